package org.cxrgateway.dicomweb;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Reads a multipart/related body (RFC 2387, the framing of RFC 2046 5.1) part by part from a stream, with a
 * fixed buffer: a part's body goes to the caller's sink as it arrives, so no part and no body is ever held in
 * memory. Every length is bounded: the whole body ({@link TooLargeException}), each part's header block and the
 * transport padding after a delimiter ({@link MalformedException} with the reason).
 */
final class MultipartRelatedReader {

    /** The body does not follow the multipart framing; the message says where. */
    static final class MalformedException extends IOException {
        MalformedException(String message) {
            super(message);
        }
    }

    /** The body is longer than the configured limit. */
    static final class TooLargeException extends IOException {
        TooLargeException(String message) {
            super(message);
        }
    }

    private static final int BUFFER = 64 * 1024;
    private static final int MAX_HEADER_BYTES = 16 * 1024;
    private static final int MAX_PADDING = 256;
    /**
     * RFC 2046 allows 70 characters; Orthanc's STOW-RS client sends two UUIDs joined by '-' (73), so the bound is
     * looser than the letter, and still small.
     */
    private static final int MAX_BOUNDARY = 200;

    private final InputStream in;
    private final long maxBytes;
    /** CRLF "--" boundary: every delimiter (RFC 2046 5.1.1), the first one too, thanks to the CRLF put in front. */
    private final byte[] delimiter;
    private final byte[] buf = new byte[BUFFER];
    private int pos;
    private int lim;
    private long read;
    private boolean eof;
    private boolean closed;
    private boolean started;

    MultipartRelatedReader(InputStream in, String boundary, long maxBytes) throws MalformedException {
        if (boundary == null || boundary.isEmpty() || boundary.length() > MAX_BOUNDARY) {
            throw new MalformedException("boundary missing or longer than " + MAX_BOUNDARY + " characters");
        }
        this.in = in;
        this.maxBytes = maxBytes;
        this.delimiter = ("\r\n--" + boundary).getBytes(StandardCharsets.ISO_8859_1);
        // the body may open with the delimiter itself: a virtual CRLF makes that the same case as any other
        buf[0] = '\r';
        buf[1] = '\n';
        lim = 2;
    }

    /** Bytes of the body read so far. */
    long bytesRead() {
        return read;
    }

    /**
     * Moves to the next part: skips the preamble (first call) or what is left of the current part, and reads the
     * part's header fields (names in lower case).
     *
     * @return the headers, or null after the close delimiter
     */
    Map<String, String> nextPart() throws IOException {
        if (closed) {
            return null;
        }
        if (!started) {
            started = true;
            copyBody(OutputStream.nullOutputStream());
            if (closed) {
                return null;
            }
        }
        return readHeaders();
    }

    /**
     * Copies the current part's body to {@code sink}, up to the next delimiter, and reads the rest of that
     * delimiter's line (close delimiter or another part).
     *
     * @return bytes copied
     */
    long copyBody(OutputStream sink) throws IOException {
        long copied = 0;
        while (true) {
            int at = indexOfDelimiter();
            if (at >= 0) {
                sink.write(buf, pos, at - pos);
                copied += at - pos;
                pos = at + delimiter.length;
                afterDelimiter();
                return copied;
            }
            // all but the bytes that could start a delimiter cut by the end of the buffer are part of the body
            int safe = Math.max(pos, lim - (delimiter.length - 1));
            sink.write(buf, pos, safe - pos);
            copied += safe - pos;
            pos = safe;
            if (!fill()) {
                throw new MalformedException("body ends before the close delimiter --" + boundaryText() + "--");
            }
        }
    }

    private void afterDelimiter() throws IOException {
        if (!ensure(2)) {
            throw new MalformedException("body ends inside a delimiter line");
        }
        if (buf[pos] == '-' && buf[pos + 1] == '-') {
            pos += 2;
            closed = true;
            return; // the epilogue is ignored, and not read
        }
        int padding = 0;
        while (ensure(1) && (buf[pos] == ' ' || buf[pos] == '\t')) {
            pos++;
            if (++padding > MAX_PADDING) {
                throw new MalformedException("delimiter line too long");
            }
        }
        if (!ensure(2) || buf[pos] != '\r' || buf[pos + 1] != '\n') {
            throw new MalformedException("delimiter not followed by CRLF");
        }
        pos += 2;
    }

    private Map<String, String> readHeaders() throws IOException {
        Map<String, String> headers = new HashMap<>();
        int total = 0;
        while (true) {
            StringBuilder line = new StringBuilder();
            while (true) {
                if (!ensure(1)) {
                    throw new MalformedException("body ends inside a part's headers");
                }
                byte b = buf[pos++];
                if (++total > MAX_HEADER_BYTES) {
                    throw new MalformedException("part headers longer than " + MAX_HEADER_BYTES + " bytes");
                }
                if (b == '\n') {
                    break;
                }
                line.append((char) (b & 0xFF));
            }
            int len = line.length();
            if (len > 0 && line.charAt(len - 1) == '\r') {
                line.setLength(len - 1);
            }
            if (line.length() == 0) {
                return headers;
            }
            int colon = line.indexOf(":");
            if (colon <= 0) {
                throw new MalformedException("part header line without a field name");
            }
            headers.put(line.substring(0, colon).trim().toLowerCase(Locale.ROOT), line.substring(colon + 1).trim());
        }
    }

    private int indexOfDelimiter() {
        int last = lim - delimiter.length;
        byte first = delimiter[0];
        outer:
        for (int i = pos; i <= last; i++) {
            if (buf[i] != first) {
                continue;
            }
            for (int j = 1; j < delimiter.length; j++) {
                if (buf[i + j] != delimiter[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    /** At least n unread bytes in the buffer, reading as needed; false at the end of the body. */
    private boolean ensure(int n) throws IOException {
        while (lim - pos < n) {
            if (!fill()) {
                return false;
            }
        }
        return true;
    }

    /** Moves the unread bytes to the front and reads more; false at the end of the body. */
    private boolean fill() throws IOException {
        if (eof) {
            return false;
        }
        if (pos > 0) {
            System.arraycopy(buf, pos, buf, 0, lim - pos);
            lim -= pos;
            pos = 0;
        }
        int n = in.read(buf, lim, buf.length - lim);
        if (n < 0) {
            eof = true;
            return false;
        }
        read += n;
        if (read > maxBytes) {
            throw new TooLargeException("body longer than " + maxBytes + " bytes");
        }
        lim += n;
        return true;
    }

    private String boundaryText() {
        return new String(delimiter, 4, delimiter.length - 4, StandardCharsets.ISO_8859_1);
    }
}
