package org.cxrgateway.inference;

import org.cxrgateway.message.WorkingImagePixels;
import org.cxrgateway.schema.v2.WorkingImage;

import java.nio.ByteBuffer;

/**
 * A working image's grey levels as values in [0, 1] (level / (2^bits - 1)), row-major, read where the message holds
 * them: a preprocessing that starts with a torch resize reads only the rows that its vertical taps need, straight
 * from the pixel bytes, and the whole image is decoded to floats only for a step that needs it all.
 *
 * <p>Why: the listener's default 1024 x 853 working image took 0.40 ms to decode whole to floats, and a torch
 * bilinear resize to 224 reads 448 of its 1024 rows (an antialiased one reads them all, but once each, while they
 * are in the cache). Decoding and preprocessing one for the demo chest14 (bilinear to 224, ImageNet normalisation)
 * took 0.99-1.0 ms before, 0.46-0.48 ms with this and the normalisation's division made a product (2026-12-06).
 */
public final class GrayImage {

    private final int width;
    private final int height;
    /** The pixel bytes (8-bit, or 16-bit little-endian) from {@code base}; null when made from floats. */
    private final byte[] bytes;
    private final int base;
    private final int bits;
    /** Decoded whole: given, or made on the first {@link #pixels()}. */
    private float[] pixels;
    /** An array that {@link #pixels()} may fill rather than allocate, when it has exactly the image's size. */
    private final float[] reuse;

    private GrayImage(int width, int height, byte[] bytes, int base, int bits, float[] pixels, float[] reuse) {
        this.width = width;
        this.height = height;
        this.bytes = bytes;
        this.base = base;
        this.bits = bits;
        this.pixels = pixels;
        this.reuse = reuse;
    }

    /**
     * The message's image, its size checked against its pixel data (a RAW image's bytes are not copied).
     *
     * @param reuse filled by {@link #pixels()} instead of a new array when it has exactly the image's size; may be null
     * @throws IllegalArgumentException for a malformed image: bad size or depth, corrupt or truncated data
     */
    public static GrayImage of(WorkingImage img, float[] reuse) {
        ByteBuffer px = WorkingImagePixels.view(img);
        byte[] a;
        int base;
        if (px.hasArray()) {
            a = px.array();
            base = px.arrayOffset() + px.position();
        } else {
            a = WorkingImagePixels.bytes(px);
            base = 0;
        }
        return new GrayImage(img.getWidth(), img.getHeight(), a, base, img.getBitsPerPixel(), null, reuse);
    }

    /** An image already decoded: row-major values in [0, 1]. */
    public static GrayImage of(float[] pixels, int width, int height) {
        if ((long) width * height != pixels.length) {
            throw new IllegalArgumentException(width + " x " + height + " image with " + pixels.length + " values");
        }
        return new GrayImage(width, height, null, 0, 0, pixels, null);
    }

    public int width() {
        return width;
    }

    public int height() {
        return height;
    }

    /** The whole image as floats, decoded on the first call. */
    public float[] pixels() {
        if (pixels == null) {
            int n = width * height;
            float[] out = reuse != null && reuse.length == n ? reuse : new float[n];
            if (bits == 8) {
                float[] lut = Levels.EIGHT_BIT;
                for (int i = 0; i < n; i++) {
                    out[i] = lut[bytes[base + i] & 0xff];
                }
            } else {
                float[] lut = Levels.SIXTEEN_BIT;
                for (int i = 0; i < n; i++) {
                    out[i] = lut[(bytes[base + 2 * i] & 0xff) | (bytes[base + 2 * i + 1] & 0xff) << 8];
                }
            }
            pixels = out;
        }
        return pixels;
    }

    /** The whole image as floats if {@link #pixels()} was called or it was made from floats, else null. */
    float[] decoded() {
        return pixels;
    }

    /**
     * acc[x] += value(x, y) * k for every x of row y: the same products as from {@link #pixels()}, as every float
     * is exact as a double.
     */
    void addScaledRow(int y, double k, double[] acc) {
        int w = width;
        if (pixels != null) {
            float[] src = pixels;
            for (int x = 0, o = y * w; x < w; x++) {
                acc[x] += src[o + x] * k;
            }
        } else if (bits == 8) {
            float[] lut = Levels.EIGHT_BIT;
            byte[] a = bytes;
            for (int x = 0, o = base + y * w; x < w; x++) {
                acc[x] += lut[a[o + x] & 0xff] * k;
            }
        } else {
            float[] lut = Levels.SIXTEEN_BIT;
            byte[] a = bytes;
            for (int x = 0, o = base + 2 * y * w; x < w; x++) {
                acc[x] += lut[(a[o + 2 * x] & 0xff) | (a[o + 2 * x + 1] & 0xff) << 8] * k;
            }
        }
    }

    /**
     * Every level's value v / (2^bits - 1), divided once here rather than per pixel (the division was a fifth of the
     * preprocessing time); the same floats as the division gives. Made once, at the first use (256 KiB for both).
     */
    private static final class Levels {
        static final float[] EIGHT_BIT = levels(255);
        static final float[] SIXTEEN_BIT = levels(65535);

        private static float[] levels(int max) {
            float[] l = new float[max + 1];
            for (int v = 0; v <= max; v++) {
                l[v] = v / (float) max;
            }
            return l;
        }
    }
}
