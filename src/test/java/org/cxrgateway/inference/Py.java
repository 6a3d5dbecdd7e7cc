package org.cxrgateway.inference;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs Debian's /usr/bin/python3 (torch, onnx) as the real reference peer of the tests. */
final class Py {
    static final Path ROOT = Path.of("").toAbsolutePath();
    static final Path MAIN = ROOT.resolve("src/main/python");
    static final Path TEST = ROOT.resolve("src/test/python");

    private Py() {
    }

    static String run(long timeoutSeconds, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add("/usr/bin/python3");
        cmd.addAll(List.of(args));
        try {
            ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
            pb.environment().put("OMP_NUM_THREADS", "2");
            pb.environment().put("PYTHONWARNINGS", "ignore");
            Process p = pb.start();
            byte[] out;
            try {
                if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("python timed out: " + cmd);
                }
                out = p.getInputStream().readAllBytes();
            } finally {
                p.destroyForcibly();
            }
            String text = new String(out, StandardCharsets.UTF_8);
            if (p.exitValue() != 0) {
                throw new IllegalStateException("python failed (" + p.exitValue() + "): " + cmd + "\n" + text);
            }
            return text;
        } catch (IOException e) {
            throw new IllegalStateException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /**
     * Writes the package's INT8 variant with quantize.py, calibrated on these model inputs (float32 [N, C, S, S]);
     * the convolutions named by floatConvs (quantize.py --float) stay float: none when it is empty.
     */
    static void quantize(Path pkgDir, float[] calibration, Path work, String... floatConvs) throws IOException {
        quantize(pkgDir, calibration, work, null, null, floatConvs);
    }

    /**
     * blocks: quantize.py's --blocks (float or uint8), weightBits: --weight-bits, floatConvs: --float; each null for
     * quantize.py's default.
     */
    static void quantize(Path pkgDir, float[] calibration, Path work, String blocks, Integer weightBits, String[] floatConvs) throws IOException {
        java.nio.file.Files.createDirectories(work);
        Path f = work.resolve("calibration.f32");
        Fixtures.writeFloats(calibration, f);
        List<String> a = new ArrayList<>(List.of(MAIN.resolve("quantize.py").toString(), pkgDir.toString(), "--tensors", f.toString()));
        if (floatConvs != null) {
            a.add("--float");
            a.addAll(List.of(floatConvs));
        }
        if (blocks != null) {
            a.addAll(List.of("--blocks", blocks));
        }
        if (weightBits != null) {
            a.addAll(List.of("--weight-bits", String.valueOf(weightBits)));
        }
        run(600, a.toArray(String[]::new));
    }

    /** Generates a package with make_demo_models.py into dir/<id>; tiny arch + embedded weights unless full. */
    static Path demoPackage(Path dir, String id, boolean tiny) {
        List<String> a = new ArrayList<>(List.of(MAIN.resolve("make_demo_models.py").toString(), "--out", dir.toString(), "--only", id));
        if (tiny) {
            a.addAll(List.of("--arch", "tiny", "--embed"));
        }
        run(300, a.toArray(String[]::new));
        return dir.resolve(id);
    }
}
