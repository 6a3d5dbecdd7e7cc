package org.cxrgateway.inference;

import org.cxrgateway.schema.v1.PixelEncoding;
import org.cxrgateway.schema.v1.WorkingImage;

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
        int max = (1 << bits) - 1;
        ByteBuffer px = ByteBuffer.allocate(w * h * bits / 8).order(ByteOrder.LITTLE_ENDIAN);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                double v = 0.5 + 0.3 * Math.sin(x * 0.05 + seed) * Math.cos(y * 0.07) + 0.1 * rnd.nextGaussian();
                int q = (int) Math.round(Math.min(Math.max(v, 0), 1) * max);
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

    static void writeRaw(WorkingImage img, Path file) throws IOException {
        Files.write(file, org.cxrgateway.queue.WorkingImagePixels.bytes(img.getPixels()));
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
