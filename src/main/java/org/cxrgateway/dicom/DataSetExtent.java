package org.cxrgateway.dicom;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Set;

/**
 * Checks that a received Part 10 file is whole: every element's declared length fits in the file
 * and the last one ends exactly at its end. The header read stops before Pixel Data, so without
 * this a data set cut short inside Pixel Data would be acknowledged as stored. Only element headers
 * are read (a few hundred bytes per instance), never the values.
 */
public final class DataSetExtent {

    private static final long UNDEFINED = 0xFFFFFFFFL;
    private static final int MAX_DEPTH = 32;
    /** Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2). */
    private static final Set<String> LONG_VRS = Set.of("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR",
            "UT", "UV");

    private final FileChannel channel;
    private final long size;
    private final boolean explicit;
    private final ByteBuffer header = ByteBuffer.allocate(12).order(ByteOrder.LITTLE_ENDIAN);

    private DataSetExtent(FileChannel channel, boolean explicit) throws IOException {
        this.channel = channel;
        this.size = channel.size();
        this.explicit = explicit;
    }

    /**
     * @param transferSyntaxUid the data set's transfer syntax; a deflated data set is not checked
     *                          (its length says nothing about the inflated structure)
     * @throws IOException naming the element whose value does not fit, when the data set is incomplete
     */
    public static void check(Path file, String transferSyntaxUid) throws IOException {
        if (DicomUids.DEFLATED_EXPLICIT_VR_LE.equals(transferSyntaxUid)) {
            return;
        }
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            DataSetExtent walker = new DataSetExtent(ch, !DicomUids.IMPLICIT_VR_LE.equals(transferSyntaxUid));
            walker.walk(walker.start(), walker.size, -1, 0);
        }
    }

    private long start() throws IOException {
        ByteBuffer magic = ByteBuffer.allocate(4);
        if (size >= 132 && channel.read(magic, 128) == 4 && "DICM".equals(new String(magic.array(), java.nio.charset.StandardCharsets.US_ASCII))) {
            return 132;
        }
        return 0;
    }

    /**
     * Walks elements from {@code pos} to {@code end} (a defined length), or until the delimiter
     * {@code (FFFE,delimiter)} when {@code delimiter >= 0}. @return the position after the last element.
     */
    private long walk(long pos, long end, int delimiter, int depth) throws IOException {
        if (depth > MAX_DEPTH) {
            throw new IOException("data set nested deeper than " + MAX_DEPTH + " levels");
        }
        while (pos < end) {
            int group = readTag(pos, 4);
            int element = header.getShort(2) & 0xFFFF;
            if (group == 0xFFFE) {
                pos += 8;
                if (element == delimiter) {
                    return pos;
                }
                throw new IOException(String.format("unexpected (FFFE,%04X) at byte %d", element, pos - 8));
            }
            boolean explicitHere = explicit || group == 0x0002;
            long length;
            boolean sequence;
            if (explicitHere) {
                readTag(pos, 8);
                String vr = new String(new byte[] {header.get(4), header.get(5)}, java.nio.charset.StandardCharsets.US_ASCII);
                if (LONG_VRS.contains(vr)) {
                    length = readLength(pos + 8);
                    pos += 12;
                } else {
                    length = header.getShort(6) & 0xFFFF;
                    pos += 8;
                }
                sequence = vr.equals("SQ") || length == UNDEFINED;
            } else {
                length = readLength(pos + 4);
                pos += 8;
                sequence = length == UNDEFINED;
            }
            if (length == UNDEFINED) {
                pos = items(pos, end, false, depth);
            } else {
                if (pos + length > end) {
                    throw new IOException(String.format("data set incomplete: (%04X,%04X) declares %d bytes, %d remain",
                            group, element, length, Math.max(0, end - pos)));
                }
                if (sequence && explicitHere) {
                    items(pos, pos + length, true, depth);
                }
                pos += length;
            }
        }
        if (delimiter >= 0) {
            throw new IOException("data set incomplete: no delimiter before the end");
        }
        return pos;
    }

    /**
     * Items of a sequence or of encapsulated Pixel Data: up to {@code end} when the sequence has a
     * defined length, else up to its delimiter, which must come before {@code end}.
     */
    private long items(long pos, long end, boolean definedLength, int depth) throws IOException {
        while (pos < end) {
            int group = readTag(pos, 4);
            int element = header.getShort(2) & 0xFFFF;
            long length = readLength(pos + 4);
            pos += 8;
            if (group != 0xFFFE) {
                throw new IOException(String.format("expected an item, found (%04X,%04X)", group, element));
            }
            if (element == 0xE0DD) {
                return pos;
            }
            if (element != 0xE000) {
                throw new IOException(String.format("unexpected (FFFE,%04X) in a sequence", element));
            }
            if (length == UNDEFINED) {
                pos = walk(pos, end, 0xE00D, depth + 1);
            } else {
                if (pos + length > end) {
                    throw new IOException(String.format("data set incomplete: an item declares %d bytes, %d remain",
                            length, Math.max(0, end - pos)));
                }
                pos += length;
            }
        }
        if (definedLength) {
            return pos;
        }
        throw new IOException("data set incomplete: a sequence has no end");
    }

    private int readTag(long pos, int bytes) throws IOException {
        header.clear().limit(bytes);
        if (pos + bytes > size) {
            throw new EOFException("data set incomplete: an element header is cut at byte " + pos);
        }
        while (header.hasRemaining()) {
            if (channel.read(header, pos + header.position()) < 0) {
                throw new EOFException("data set incomplete at byte " + pos);
            }
        }
        return header.getShort(0) & 0xFFFF;
    }

    private long readLength(long pos) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
        if (pos + 4 > size) {
            throw new EOFException("data set incomplete: a value length is cut at byte " + pos);
        }
        while (b.hasRemaining()) {
            if (channel.read(b, pos + b.position()) < 0) {
                throw new EOFException("data set incomplete at byte " + pos);
            }
        }
        return b.getInt(0) & 0xFFFFFFFFL;
    }
}
