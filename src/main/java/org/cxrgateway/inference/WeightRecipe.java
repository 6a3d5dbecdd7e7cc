package org.cxrgateway.inference;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.cxrgateway.storage.DurableFiles;
import java.nio.file.StandardOpenOption;

/**
 * Regenerates a demo package's external weights file from its recipe, bit-for-bit what
 * src/main/python/cxr_models.py generated and exported: SplitMix64 over (FNV-1a(name) ^ seed,
 * element index), top 24 bits to a float in [-1, 1), then one float multiply and one add. This is
 * why the demo packages ship as a ~0.3 MB graph instead of 28 MB of random numbers each.
 */
public final class WeightRecipe {

    private static final long GOLDEN = 0x9E3779B97F4A7C15L;

    private WeightRecipe() {
    }

    public static long fnv1a64(String text) {
        long h = 0xCBF29CE484222325L;
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            h ^= (b & 0xff);
            h *= 0x100000001B3L;
        }
        return h;
    }

    /** Fills out with the generated values of one tensor. */
    public static void generate(long seed, String name, float scale, float offset, float[] out) {
        long state = fnv1a64(name) ^ seed;
        for (int i = 0; i < out.length; i++) {
            long z = state + (i + 1L) * GOLDEN;
            z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
            z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
            z = z ^ (z >>> 31);
            float u = (float) (z >>> 40) * 0x1p-23f - 1.0f;
            out[i] = u * scale + offset;
        }
    }

    /** Writes the weights file named by the recipe into dir, atomically; always regenerated (fast) so it can never be stale. */
    public static Path materialise(Path dir, String recipeFile) {
        Path recipePath = dir.resolve(recipeFile);
        JsonNode r;
        try {
            r = new ObjectMapper().readTree(recipePath.toFile());
        } catch (IOException e) {
            throw new ModelPackageException(dir + ": weights.recipe: cannot read " + recipeFile + ": " + e.getMessage(), e);
        }
        if (!"splitmix64-fnv1a-v1".equals(r.path("generator").asText())) {
            throw new ModelPackageException(dir + ": weights.recipe: unknown generator '" + r.path("generator").asText() + "'");
        }
        String file = r.path("file").asText();
        if (file.isEmpty() || file.contains("/") || file.contains("\\")) {
            throw new ModelPackageException(dir + ": weights.recipe: bad file name '" + file + "'");
        }
        long seed = r.path("seed").asLong();
        long total = r.path("fileLength").asLong();
        Path target = dir.resolve(file);
        try {
            Path tmp = Files.createTempFile(dir, file, ".part");
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                for (JsonNode t : r.path("tensors")) {
                    long count = 1;
                    for (JsonNode d : t.path("shape")) {
                        count *= d.asLong();
                    }
                    long length = t.path("length").asLong();
                    if (length != count * 4) {
                        throw new ModelPackageException(dir + ": weights.recipe: tensor " + t.path("name").asText() + " length " + length + " does not match its shape");
                    }
                    float[] v = new float[Math.toIntExact(count)];
                    generate(seed, t.path("name").asText(), (float) t.path("scale").asDouble(),
                            (float) t.path("offset").asDouble(), v);
                    ByteBuffer bb = ByteBuffer.allocate(v.length * 4).order(ByteOrder.LITTLE_ENDIAN);
                    bb.asFloatBuffer().put(v);
                    ch.write(bb, t.path("position").asLong());
                }
                if (ch.size() < total) {
                    ch.write(ByteBuffer.allocate(1), total - 1);
                }
            }
            // durable like every other state file: a power loss must not leave a named, short weights file
            DurableFiles.publish(tmp, target);
            return target;
        } catch (IOException e) {
            throw new ModelPackageException(dir + ": cannot write " + file + ": " + e.getMessage(), e);
        }
    }
}
