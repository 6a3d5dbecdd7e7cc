package org.cxrgateway.message;

import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.WorkingImage;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * The pixel payload of a {@link WorkingImage}, one codec for every producer and consumer of the
 * message: row-major grey, 8-bit or 16-bit little-endian, RAW or DEFLATE (a zlib stream, RFC 1950).
 */
public final class WorkingImagePixels {

    /** Guards against a hostile or corrupt message inflating to an absurd size. */
    public static final long MAX_PIXELS = 8192L * 8192;

    private WorkingImagePixels() {
    }

    public static WorkingImage encode(int width, int height, int bitsPerPixel, byte[] raw, PixelEncoding encoding) {
        return WorkingImage.newBuilder().setWidth(width).setHeight(height).setBitsPerPixel(bitsPerPixel)
                .setEncoding(encoding)
                .setPixels(ByteBuffer.wrap(encoding == PixelEncoding.DEFLATE ? deflate(raw) : raw))
                .build();
    }

    /**
     * The raw pixel bytes, checked against the declared size: a copy (a RAW image's) or the inflated bytes.
     *
     * @throws IllegalArgumentException for a malformed image: bad size or depth, corrupt or truncated data
     */
    public static byte[] decode(WorkingImage img) {
        ByteBuffer px = view(img);
        return img.getEncoding() == PixelEncoding.DEFLATE ? px.array() : bytes(px);
    }

    /**
     * The raw pixel bytes, checked as {@link #decode} checks them, without copying a RAW image's: its message buffer
     * itself (position to limit; the caller must not write to it), the inflated bytes for DEFLATE.
     *
     * @throws IllegalArgumentException for a malformed image: bad size or depth, corrupt or truncated data
     */
    public static ByteBuffer view(WorkingImage img) {
        int w = img.getWidth();
        int h = img.getHeight();
        int bits = img.getBitsPerPixel();
        if (w <= 0 || h <= 0 || (long) w * h > MAX_PIXELS) {
            throw new IllegalArgumentException("working image size " + w + "x" + h + " out of range");
        }
        if (bits != 8 && bits != 16) {
            throw new IllegalArgumentException("working image bits per pixel " + bits + " not 8 or 16");
        }
        int expected = w * h * (bits / 8);
        ByteBuffer px = img.getPixels().duplicate();
        if (img.getEncoding() == PixelEncoding.DEFLATE) {
            px = ByteBuffer.wrap(inflate(px, expected));
        }
        if (px.remaining() != expected) {
            throw new IllegalArgumentException("working image has " + px.remaining() + " pixel bytes, expected " + expected);
        }
        return px;
    }

    /** A copy of a message's bytes field, leaving the buffer's position alone. */
    public static byte[] bytes(ByteBuffer buffer) {
        ByteBuffer d = buffer.duplicate();
        byte[] out = new byte[d.remaining()];
        d.get(out);
        return out;
    }

    static byte[] deflate(byte[] raw) {
        return deflate(raw, Deflater.DEFAULT_COMPRESSION);
    }

    /** zlib (RFC 1950) at a java.util.zip.Deflater level; the one deflater of the message payloads. */
    public static byte[] deflate(byte[] raw, int level) {
        Deflater d = new Deflater(level);
        try {
            d.setInput(raw);
            d.finish();
            ByteArrayOutputStream out = new ByteArrayOutputStream(raw.length / 2 + 64);
            byte[] buf = new byte[65536];
            while (!d.finished()) {
                out.write(buf, 0, d.deflate(buf));
            }
            return out.toByteArray();
        } finally {
            d.end();
        }
    }

    /**
     * Inflates from the message's buffer (its position moves: pass a duplicate) straight into an array of the declared
     * size (no copy of the input, no growing buffer, no copy out of it); a stream that ends early gives a shorter
     * array, which the caller's size check refuses.
     */
    static byte[] inflate(ByteBuffer in, int expected) {
        Inflater inf = new Inflater();
        try {
            inf.setInput(in);
            byte[] out = new byte[expected];
            byte[] beyond = new byte[1];
            int n = 0;
            while (!inf.finished()) {
                int k = n < expected ? inf.inflate(out, n, expected - n) : inf.inflate(beyond);
                if (n == expected && k > 0) {
                    throw new IllegalArgumentException("DEFLATE pixel data larger than " + expected + " bytes");
                }
                if (k == 0 && (inf.needsInput() || inf.needsDictionary())) {
                    throw new IllegalArgumentException("truncated DEFLATE pixel data");
                }
                n += k;
            }
            return n == expected ? out : java.util.Arrays.copyOf(out, n);
        } catch (DataFormatException e) {
            throw new IllegalArgumentException("bad DEFLATE pixel data: " + e.getMessage());
        } finally {
            inf.end();
        }
    }
}
