package org.cxrgateway.inference;

import java.nio.file.Path;
import java.util.Arrays;

/**
 * Benchmark driver for toolkit/bench/int8-guard-bench.sh (not a test): a trained package's engines on its own
 * preprocessed images, FP32, the INT8 variant alone, and the INT8 variant with the decision guard at the default
 * margin (what cxr.inference.precision=int8 serves). Prints key=value lines.
 * <p>
 * Args: PACKAGE_DIR INPUTS.f32 (little-endian float32 [N, C, S, S]) BATCH THREADS WORK_DIR
 */
public final class Int8GuardBench {

    public static void main(String[] args) throws Exception {
        ModelPackage pkg = ModelPackage.open(Path.of(args[0]), Path.of(args[4]));
        float[] x = Fixtures.readFloats(Path.of(args[1]));
        int batch = Integer.parseInt(args[2]);
        SessionSettings settings = SessionSettings.defaults(Integer.parseInt(args[3]));
        ModelManifest m = pkg.manifest();
        try (OrtModel fp32 = new OrtModel(pkg, EngineKind.cpu, settings, Precision.fp32, null);
             OrtModel alone = new OrtModel(pkg, EngineKind.cpu, settings, Precision.int8, 0, null);
             OrtModel guarded = new OrtModel(pkg, EngineKind.cpu, settings, Precision.int8, null)) {
            int len = fp32.inputLength(), n = x.length / len;
            if (n == 0 || x.length % len != 0) {
                throw new IllegalArgumentException(args[1] + ": " + x.length + " floats, not a whole number of " + len + "-value inputs");
            }
            OrtModel[] models = {fp32, alone, guarded};
            for (OrtModel model : models) {
                model.warmUp(batch);
            }
            // the models alternate, pass by pass: a figure taken at another moment than its baseline's compares moments
            int reps = 5;
            double[][] seconds = new double[models.length][reps];
            float[][] logits = new float[models.length][n * m.labels().size()];
            long refereed = 0; // by the guarded model in one pass over the images
            for (int k = -1; k < reps; k++) {
                for (int mi = 0; mi < models.length; mi++) {
                    long before = guarded.refereedImages();
                    long t0 = System.nanoTime();
                    for (int s = 0; s < n; s += batch) {
                        int b = Math.min(batch, n - s);
                        float[] l = models[mi].run(Arrays.copyOfRange(x, s * len, (s + b) * len), b).logits();
                        System.arraycopy(l, 0, logits[mi], s * m.labels().size(), l.length);
                    }
                    if (k >= 0) {
                        seconds[mi][k] = (System.nanoTime() - t0) / 1e9;
                    }
                    if (models[mi] == guarded) {
                        refereed = guarded.refereedImages() - before;
                    }
                }
            }
            String[] names = {"fp32", "int8", "int8_guarded"};
            for (int mi = 0; mi < models.length; mi++) {
                Arrays.sort(seconds[mi]);
                System.out.printf("%s_img_s=%.2f%n", names[mi], n / seconds[mi][reps / 2]);
            }
            int[] flips = new int[3];
            double maxDp = 0;
            for (int i = 0; i < n; i++) {
                double[] p = Scorer.probabilities(m, logits[0], i);
                for (int mi = 1; mi < 3; mi++) {
                    double[] q = Scorer.probabilities(m, logits[mi], i);
                    for (int c : m.reportedIndices()) {
                        double t = m.labels().get(c).threshold();
                        flips[mi] += (p[c] >= t) != (q[c] >= t) ? 1 : 0;
                        maxDp = mi == 1 ? Math.max(maxDp, Math.abs(p[c] - q[c])) : maxDp;
                    }
                }
            }
            System.out.printf("images=%d%ninput_size=%d%nmargin=%s%nrefereed_images=%d%nint8_max_dp=%.4f%nflips_int8=%d%nflips_int8_guarded=%d%n",
                    n, m.input().size(), guarded.decisionMargin(), refereed, maxDp, flips[1], flips[2]);
        }
    }
}
