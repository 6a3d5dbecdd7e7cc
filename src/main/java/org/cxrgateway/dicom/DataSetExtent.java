package org.cxrgateway.dicom;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Checks that a received Part 10 file is whole: every element's declared length fits in the file
 * and the last one ends exactly at its end. The header read stops before Pixel Data, so without
 * this a data set cut short inside Pixel Data would be acknowledged as stored. Only element headers
 * are looked at, never the values.
 *
 * <p>The walk is a {@link Scanner} fed bytes in order, so that the C-STORE path checks a data set as it
 * streams to disk, without reading the file back; {@link #check} feeds it from a file and jumps over the
 * values instead of reading them.
 */
public final class DataSetExtent {

    private static final long UNDEFINED = 0xFFFFFFFFL;
    private static final int MAX_DEPTH = 32;
    private static final int PREAMBLE = 132;
    /** File reads of {@link #check}: element headers lie close together, values are jumped over. */
    private static final int READ_CHUNK = 8192;

    private DataSetExtent() {
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
            long size = ch.size();
            ByteBuffer buf = ByteBuffer.allocate(READ_CHUNK);
            buf.limit(PREAMBLE);
            boolean part10 = size >= PREAMBLE && ch.read(buf, 0) == PREAMBLE && isPart10(buf.array(), PREAMBLE);
            Scanner scanner = new Scanner(transferSyntaxUid, part10);
            long pos = 0;
            while (pos < size) {
                long skip = scanner.valueLeft();
                if (skip > 0) {
                    long n = Math.min(skip, size - pos);
                    scanner.pass(n);
                    pos += n;
                    continue;
                }
                buf.clear().limit((int) Math.min(READ_CHUNK, size - pos));
                int n = ch.read(buf, pos);
                if (n <= 0) {
                    break;
                }
                scanner.feed(buf.array(), 0, n);
                pos += n;
            }
            scanner.finish();
        }
    }

    /** True when the first {@code length} bytes of {@code b} hold the 128-byte preamble and "DICM" (PS3.10 7.1). */
    static boolean isPart10(byte[] b, int length) {
        return length >= PREAMBLE && "DICM".equals(new String(b, 128, 4, StandardCharsets.US_ASCII));
    }

    /**
     * The walk over one data set (a Part 10 file from its first byte, preamble and meta information
     * included), fed in order in pieces of any size. Value bytes are only counted. Memory is bounded
     * whatever the peer declares: one frame per open sequence or item, at most {@value #MAX_DEPTH} item
     * levels. The first structural error is kept and thrown by every later call.
     */
    static final class Scanner {
        private final boolean explicit;
        /** Stream position of the next byte. */
        private long pos;
        /** Value bytes still to pass before the next element header. */
        private long valueLeft;
        private final byte[] header = new byte[12];
        private int have;
        private int need = 4;
        private Frame frame = new Frame(false, Long.MAX_VALUE, -1, false, null, 0);
        /** Where the top-level Pixel Data element's header starts; -1 until it is seen. */
        private long pixelDataAt = -1;
        /** The last value of a defined length: tag and where it started, for the truncation message. */
        private int lastGroup;
        private int lastElement;
        private long lastLength;
        private long lastValueAt;
        private IOException failure;

        /**
         * @param part10 the stream starts with the 128-byte preamble and "DICM" (they are passed over); the
         *               meta information (group 0002) is explicit VR whatever the transfer syntax
         * @throws IllegalArgumentException for a deflated transfer syntax, which cannot be walked
         */
        Scanner(String transferSyntaxUid, boolean part10) {
            if (DicomUids.DEFLATED_EXPLICIT_VR_LE.equals(transferSyntaxUid)) {
                throw new IllegalArgumentException("a deflated data set cannot be walked");
            }
            this.explicit = !DicomUids.IMPLICIT_VR_LE.equals(transferSyntaxUid);
            if (part10) {
                valueLeft = PREAMBLE;
            }
        }

        /** A sequence's items ({@code items}) or a data set's elements, ending at {@code end} or at a delimiter. */
        private record Frame(boolean items, long end, int delimiter, boolean definedLength, Frame parent, int depth) {
        }

        /** Bytes of the current value still to come; a reader may {@link #pass} them instead of feeding them. */
        long valueLeft() {
            return valueLeft;
        }

        /** Where the top-level Pixel Data element starts in the stream, or -1 while it has not been seen. */
        long pixelDataAt() {
            return pixelDataAt;
        }

        /** Passes {@code n <= valueLeft()} value bytes without their contents. */
        void pass(long n) throws IOException {
            if (failure != null) {
                throw failure;
            }
            if (n > valueLeft) {
                throw new IllegalArgumentException(n + " bytes to pass, " + valueLeft + " left in the value");
            }
            valueLeft -= n;
            pos += n;
            if (valueLeft == 0) {
                settle();
            }
        }

        void feed(byte[] b, int off, int len) throws IOException {
            if (failure != null) {
                throw failure;
            }
            try {
                while (len > 0) {
                    if (valueLeft > 0) {
                        int n = (int) Math.min(valueLeft, len);
                        off += n;
                        len -= n;
                        pass(n);
                        continue;
                    }
                    int n = Math.min(need - have, len);
                    System.arraycopy(b, off, header, have, n);
                    have += n;
                    off += n;
                    len -= n;
                    pos += n;
                    if (have == need) {
                        onHeader();
                    }
                }
            } catch (IOException e) {
                failure = e;
                throw e;
            }
        }

        /** The stream ended: it must end between two top-level elements. */
        void finish() throws IOException {
            if (failure != null) {
                throw failure;
            }
            IOException e = null;
            if (valueLeft > 0) {
                e = new IOException(String.format("data set incomplete: (%04X,%04X) declares %d bytes, %d remain",
                        lastGroup, lastElement, lastLength, pos - lastValueAt));
            } else if (have > 0) {
                e = new IOException("data set incomplete: an element header is cut at byte " + (pos - have));
            } else if (frame.parent() != null) {
                e = new IOException(frame.items() ? "data set incomplete: a sequence has no end"
                        : "data set incomplete: no delimiter before the end");
            }
            if (e != null) {
                failure = e;
                throw e;
            }
        }

        private int u16(int at) {
            return (header[at] & 0xFF) | (header[at + 1] & 0xFF) << 8;
        }

        private long u32(int at) {
            return (u16(at) | (long) u16(at + 2) << 16) & 0xFFFFFFFFL;
        }

        /** {@code need} header bytes are in: either ask for more of the header or act on it. */
        private void onHeader() throws IOException {
            long start = pos - have;
            int group = u16(0);
            int element = u16(2);
            if (frame.items()) {
                if (need < 8) {
                    need = 8;
                    return;
                }
                long length = u32(4);
                endHeader();
                if (group != 0xFFFE) {
                    throw new IOException(String.format("expected an item, found (%04X,%04X)", group, element));
                }
                if (element == 0xE0DD) {
                    frame = frame.parent();
                    settle();
                    return;
                }
                if (element != 0xE000) {
                    throw new IOException(String.format("unexpected (FFFE,%04X) in a sequence", element));
                }
                if (length == UNDEFINED) {
                    if (frame.depth() >= MAX_DEPTH) {
                        throw new IOException("data set nested deeper than " + MAX_DEPTH + " levels");
                    }
                    frame = new Frame(false, frame.end(), 0xE00D, false, frame, frame.depth() + 1);
                } else {
                    value(group, element, length, "an item");
                }
                return;
            }
            if (group == 0xFFFE) {
                if (need < 8) {
                    need = 8;
                    return;
                }
                endHeader();
                if (element == frame.delimiter()) {
                    frame = frame.parent();
                    settle();
                    return;
                }
                throw new IOException(String.format("unexpected (FFFE,%04X) at byte %d", element, start));
            }
            boolean explicitHere = explicit || group == 0x0002;
            long length;
            boolean sequence;
            if (explicitHere) {
                if (need < 8) {
                    need = 8;
                    return;
                }
                boolean longVr = longVr(header[4], header[5]);
                if (longVr && need < 12) {
                    need = 12;
                    return;
                }
                length = longVr ? u32(8) : u16(6);
                sequence = header[4] == 'S' && header[5] == 'Q' || length == UNDEFINED;
            } else {
                if (need < 8) {
                    need = 8;
                    return;
                }
                length = u32(4);
                sequence = length == UNDEFINED;
            }
            endHeader();
            if (frame.parent() == null && group == 0x7FE0 && element == 0x0010 && pixelDataAt < 0) {
                pixelDataAt = start;
            }
            if (length == UNDEFINED) {
                frame = new Frame(true, frame.end(), -1, false, frame, frame.depth());
            } else if (sequence && explicitHere) {
                fits(group, element, length, null);
                frame = new Frame(true, pos + length, -1, true, frame, frame.depth());
                settle();
            } else {
                value(group, element, length, null);
            }
        }

        private void endHeader() {
            have = 0;
            need = 4;
        }

        /** A value (or a sequence of a defined length) must end within what holds it. */
        private void fits(int group, int element, long length, String what) throws IOException {
            if (pos + length > frame.end()) {
                throw new IOException(String.format("data set incomplete: %s declares %d bytes, %d remain",
                        what != null ? what : String.format("(%04X,%04X)", group, element), length,
                        Math.max(0, frame.end() - pos)));
            }
        }

        private void value(int group, int element, long length, String what) throws IOException {
            fits(group, element, length, what);
            lastGroup = group;
            lastElement = element;
            lastLength = length;
            lastValueAt = pos;
            valueLeft = length;
            if (length == 0) {
                settle();
            }
        }

        /**
         * Between two elements: closes every sequence of a defined length that ends here; an item or a
         * sequence that must end with a delimiter may not reach the end of what holds it.
         */
        private void settle() throws IOException {
            while (frame.parent() != null && pos >= frame.end()) {
                if (pos > frame.end()) {
                    throw new IOException("an element header crosses the end of its sequence at byte " + frame.end());
                }
                if (frame.items() && frame.definedLength()) {
                    frame = frame.parent();
                } else if (frame.items()) {
                    throw new IOException("data set incomplete: a sequence has no end");
                } else {
                    throw new IOException("data set incomplete: no delimiter before the end");
                }
            }
        }

        /** Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2). */
        private static boolean longVr(byte a, byte b) {
            return switch (a) {
                case 'O' -> b == 'B' || b == 'D' || b == 'F' || b == 'L' || b == 'V' || b == 'W';
                case 'S' -> b == 'Q' || b == 'V';
                case 'U' -> b == 'C' || b == 'N' || b == 'R' || b == 'T' || b == 'V';
                default -> false;
            };
        }
    }
}
