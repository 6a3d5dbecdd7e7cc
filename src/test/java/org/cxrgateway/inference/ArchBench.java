package org.cxrgateway.inference;

import org.cxrgateway.xai.GradCam;

import java.nio.file.Path;
import java.util.Random;

/**
 * Benchmark driver for src/bench/arch-replay.sh (not a test): per package, ONNX Runtime engine img/s at FP32 and, where
 * the package has its INT8 variant, INT8 (same session settings as the worker), and the host-side Grad-CAM cost
 * (ClassifierHead forward and back + map) per image and class. Prints key=value lines.
 *   ArchBench THREADS N BATCH WORK PACKAGE_DIR...
 */
public final class ArchBench {

    public static void main(String[] args) {
        int threads = Integer.parseInt(args[0]), n = Integer.parseInt(args[1]), batch = Integer.parseInt(args[2]);
        Path work = Path.of(args[3]);
        for (int a = 4; a < args.length; a++) {
            ModelPackage pkg = ModelPackage.open(Path.of(args[a]), work);
            String id = pkg.manifest().id();
            for (Precision p : Precision.values()) {
                if (p == Precision.int8 && pkg.manifest().int8() == null) {
                    continue;
                }
                // the engine alone (no INT8 decision guard: random inputs say nothing of how many images it would referee)
                try (OrtModel m = new OrtModel(pkg, EngineKind.cpu, SessionSettings.defaults(threads), p, 0, null)) {
                    m.warmUp(batch);
                    float[] x = new float[batch * m.inputLength()];
                    Random rnd = new Random(1);
                    for (int i = 0; i < x.length; i++) {
                        x[i] = (float) rnd.nextGaussian();
                    }
                    int rounds = Math.max(1, n / batch);
                    OrtModel.Output out = null;
                    long t0 = System.nanoTime();
                    for (int r = 0; r < rounds; r++) {
                        out = m.run(x, batch);
                    }
                    double s = (System.nanoTime() - t0) / 1e9;
                    System.out.printf(java.util.Locale.ROOT, "%s_%s_img_s=%.2f%n", id, p, rounds * batch / s);
                    if (p == Precision.fp32) {
                        int c = m.featureChannels(), fs = m.featureSize();
                        long t1 = System.nanoTime();
                        int maps = 0;
                        for (int r = 0; r < 20; r++) {
                            for (int i = 0; i < batch; i++) {
                                int off = i * c * fs * fs;
                                GradCam.map(out.features(), off, c, fs, fs, pkg.head().camRow(out.features(), off, 0));
                                maps++;
                            }
                        }
                        System.out.printf(java.util.Locale.ROOT, "%s_gradcam_ms=%.4f%n", id, (System.nanoTime() - t1) / 1e6 / maps);
                    }
                }
            }
        }
    }
}
