package org.cxrgateway.message;

import org.apache.avro.AvroRuntimeException;
import org.cxrgateway.schema.v1.StudyJob;
import org.cxrgateway.schema.v1.StudyResult;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;

/**
 * Wire format of our messages: Avro single-object encoding (a header with the writer schema's
 * fingerprint, then Avro binary). Anything that does not decode to the schema version we
 * understand is a {@link PoisonMessageException}, for the dead-letter topic.
 */
public final class MessageCodec {

    public static final int SCHEMA_VERSION = 1;

    private MessageCodec() {
    }

    public static byte[] encode(StudyJob job) {
        return bytes(() -> job.toByteBuffer());
    }

    public static byte[] encode(StudyResult result) {
        return bytes(() -> result.toByteBuffer());
    }

    public static StudyJob decodeJob(byte[] value) throws PoisonMessageException {
        StudyJob job = decode(value, StudyJob::fromByteBuffer, "StudyJob");
        checkVersion(job.getSchemaVersion(), "StudyJob");
        return job;
    }

    public static StudyResult decodeResult(byte[] value) throws PoisonMessageException {
        StudyResult result = decode(value, StudyResult::fromByteBuffer, "StudyResult");
        checkVersion(result.getSchemaVersion(), "StudyResult");
        return result;
    }

    private static void checkVersion(int version, String type) throws PoisonMessageException {
        if (version != SCHEMA_VERSION) {
            throw new PoisonMessageException(type + " schemaVersion " + version + " is not supported (expected "
                    + SCHEMA_VERSION + ")");
        }
    }

    private interface Decoder<T> {
        T decode(ByteBuffer buffer) throws IOException;
    }

    private interface Encoder {
        ByteBuffer encode() throws IOException;
    }

    private static <T> T decode(byte[] value, Decoder<T> decoder, String type) throws PoisonMessageException {
        if (value == null || value.length == 0) {
            throw new PoisonMessageException("empty " + type + " message");
        }
        try {
            return decoder.decode(ByteBuffer.wrap(value));
        } catch (IOException | AvroRuntimeException | IndexOutOfBoundsException e) {
            throw new PoisonMessageException("not a " + type + " v" + SCHEMA_VERSION + " message: " + e.getMessage());
        }
    }

    private static byte[] bytes(Encoder encoder) {
        try {
            ByteBuffer buffer = encoder.encode();
            byte[] out = new byte[buffer.remaining()];
            buffer.get(out);
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
