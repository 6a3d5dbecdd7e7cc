package org.cxrgateway.inference;

import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.WorkingImage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

/** Fixed, generated test inputs (no X-ray data can be had here): smooth structure plus seeded noise. */
final class Fixtures {
    private Fixtures() {
    }

    static WorkingImage image(int w, int h, int bits, long seed) {
        Random rnd = new Random(seed);
        return render(w, h, bits, (x, y) -> 0.5 + 0.3 * Math.sin(x * 0.05 + seed) * Math.cos(y * 0.07) + 0.1 * rnd.nextGaussian());
    }

    /** A raw grey image of pixel(x, y) in [0, 1] (clamped), evaluated in row-major order. */
    private static WorkingImage render(int w, int h, int bits, java.util.function.DoubleBinaryOperator pixel) {
        int max = (1 << bits) - 1;
        ByteBuffer px = ByteBuffer.allocate(w * h * bits / 8).order(ByteOrder.LITTLE_ENDIAN);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int q = (int) Math.round(Math.min(Math.max(pixel.applyAsDouble(x, y), 0), 1) * max);
                if (bits == 8) {
                    px.put((byte) q);
                } else {
                    px.putShort((short) q);
                }
            }
        }
        px.flip();
        return WorkingImage.newBuilder().setWidth(w).setHeight(h).setBitsPerPixel(bits)
                .setEncoding(PixelEncoding.RAW).setPixels(px).build();
    }

    /**
     * Working images that differ as films do, in exposure, contrast, structure and a few round
     * opacities, plus seeded noise. A random-init network's features move with these; across image()'s
     * images (one pattern, shifted) they barely move, and a test that spreads a head over them measures
     * little but noise.
     */
    static WorkingImage variedImage(int w, int h, int bits, long seed) {
        Random rnd = new Random(seed);
        double level = 0.2 + 0.6 * rnd.nextDouble(), contrast = 0.05 + 0.35 * rnd.nextDouble();
        double freq = 2 + 10 * rnd.nextDouble(), noise = 0.15 * rnd.nextDouble();
        double[][] blobs = new double[rnd.nextInt(4)][];
        for (int i = 0; i < blobs.length; i++) { // centre x, y, radius (fractions of the side), amplitude
            blobs[i] = new double[]{0.2 + 0.6 * rnd.nextDouble(), 0.2 + 0.6 * rnd.nextDouble(), 0.03 + 0.12 * rnd.nextDouble(), 0.8 * rnd.nextDouble() - 0.4};
        }
        return render(w, h, bits, (x, y) -> {
            double u = x / w, v = y / h;
            double p = level + contrast * Math.sin(u * freq + seed) * Math.cos(v * freq * 0.7) + noise * rnd.nextGaussian();
            for (double[] b : blobs) {
                p += b[3] * Math.exp(-((u - b[0]) * (u - b[0]) + (v - b[1]) * (v - b[1])) / (2 * b[2] * b[2]));
            }
            return p;
        });
    }

    static void writeRaw(WorkingImage img, Path file) throws IOException {
        Files.write(file, org.cxrgateway.message.WorkingImagePixels.bytes(img.getPixels()));
    }

    static void writeFloats(float[] v, Path file) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        b.asFloatBuffer().put(v);
        Files.write(file, b.array());
    }

    static float[] readFloats(Path file) throws IOException {
        byte[] b = Files.readAllBytes(file);
        float[] v = new float[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
        return v;
    }

    static double maxAbsDiff(float[] a, int aOff, float[] b, int bOff, int n) {
        double m = 0;
        for (int i = 0; i < n; i++) {
            m = Math.max(m, Math.abs((double) a[aOff + i] - b[bOff + i]));
        }
        return m;
    }
}
