package org.cxrgateway.message;

import org.cxrgateway.schema.v1.PixelEncoding;
import org.cxrgateway.schema.v1.SourceImage;
import org.cxrgateway.schema.v1.StudyInfo;
import org.cxrgateway.schema.v1.StudyJob;
import org.cxrgateway.schema.v1.WorkingImage;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MessageCodecTest {

    static StudyJob job(int schemaVersion) {
        byte[] pixels = {1, 2, 3, 4, 5, 6};
        return StudyJob.newBuilder()
                .setSchemaVersion(schemaVersion)
                .setJobId("j1")
                .setCreatedAtEpochMs(1L)
                .setStudy(StudyInfo.newBuilder().setStudyInstanceUid("1.2.3").setPatientId("P1").build())
                .setImages(List.of(SourceImage.newBuilder()
                        .setSopInstanceUid("1.2.3.4").setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1")
                        .setSeriesInstanceUid("1.2.3.5").setModality("DX").setSourceRows(2).setSourceColumns(3)
                        .setImage(WorkingImage.newBuilder().setWidth(3).setHeight(2).setBitsPerPixel(8)
                                .setEncoding(PixelEncoding.RAW).setPixels(ByteBuffer.wrap(pixels)).build())
                        .build()))
                .setSkipped(List.of())
                .build();
    }

    @Test
    void roundTrip() throws Exception {
        StudyJob decoded = MessageCodec.decodeJob(MessageCodec.encode(job(1)));
        assertEquals("1.2.3", decoded.getStudy().getStudyInstanceUid());
        byte[] pixels = new byte[decoded.getImages().get(0).getImage().getPixels().remaining()];
        decoded.getImages().get(0).getImage().getPixels().get(pixels);
        assertArrayEquals(new byte[]{1, 2, 3, 4, 5, 6}, pixels);
    }

    @Test
    void garbageAndForeignVersionsArePoison() {
        var garbage = assertThrows(PoisonMessageException.class,
                () -> MessageCodec.decodeJob("not avro".getBytes(StandardCharsets.UTF_8)));
        assertTrue(garbage.getMessage().contains("StudyJob"), garbage.getMessage());
        assertThrows(PoisonMessageException.class, () -> MessageCodec.decodeJob(new byte[0]));
        var version = assertThrows(PoisonMessageException.class, () -> MessageCodec.decodeJob(MessageCodec.encode(job(2))));
        assertTrue(version.getMessage().contains("schemaVersion 2"), version.getMessage());
        // a result is not a job
        assertThrows(PoisonMessageException.class, () -> MessageCodec.decodeResult(MessageCodec.encode(job(1))));
    }
}
