package org.cxrgateway.inference;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The guided-backpropagation graph (guided_backprop.py), executed by ONNX Runtime, against PyTorch autograd
 * (guided_reference.py) on a seeded FULL-SIZE DenseNet-121 at 224 x 224 whose head makes the logits move with
 * the input: guided on against a copy of the model with a guided-ReLU autograd Function at every ReLU (the
 * functional one before the pool included); guided off against torch.autograd.grad of the logit, which checks
 * every adjoint operator (ConvTranspose, BN scale, ReLU mask, slices, upsampling, max-pool scatter, head seed).
 */
class GuidedBackpropFidelityTest {

    static final Path WORK = Path.of("target/test-work/guided-fidelity");

    @Test
    void fullSizeDenseNet121MatchesAutograd() throws Exception {
        check(WORK, "densenet121", "linear", 224);
    }

    /**
     * ResNet-50 (residual additions: the gradient into both branches; bottleneck 1x1 / strided 3x3 / 1x1 convs and
     * 1x1 strided downsample shortcuts) with the paper's ResNet50+ MLP head, and VGG16-BN (conv biases, five 2x2
     * max-pools, an MLP over the flattened map): the same proof at 64 x 64, full depth. The MLP head's ReLUs follow
     * the guided rule too, in the graph's seed and in the reference's copy.
     */
    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"resnet50,'mlp:32,32'", "vgg16_bn,'mlp:32,32'"})
    void resNetAndVggMatchAutograd(String arch, String head) throws Exception {
        check(Path.of("target/test-work/guided-fidelity-" + arch), arch, head, 64);
    }

    private static void check(Path dir, String arch, String head, int size) throws Exception {
        Path work = Files.createDirectories(dir.toAbsolutePath());
        String printed = Py.run(600, Py.TEST.resolve("guided_reference.py").toString(), work.toString(),
                "--images", "2", "--labels", "3", "--arch", arch, "--head", head, "--size", String.valueOf(size));
        JsonNode ref = new ObjectMapper().readTree(work.resolve("reference.json").toFile());
        int images = ref.get("images").asInt(), labels = ref.get("labels").asInt();
        int c = ref.get("channels").asInt(), s = ref.get("size").asInt();
        assertEquals(arch, ref.get("arch").asText());
        // the forward logits show that the graph carries the model's weights (the gradients are the proof): within
        // 1e-4 of a logit, or 4x PyTorch's own fp32-vs-fp64 difference where that is higher. A head spread over two
        // images of a random-init ResNet cancels a large common mode of the pooled features, which turns 1e-6 relative
        // backbone rounding into ~1e-3 of a logit in any float32 implementation (PyTorch's own floor, measured)
        // Without AVX-512 (see guided_reference.STRICT) ONNX Runtime's float32 kernels round unlike PyTorch's and
        // flip near-ties no screening foresees (AMD EPYC, AVX2: VGG16-BN guided 3.5e-3 of the max with cosine
        // 0.9999997, ResNet-50 logits 9e-3 apart at a spread of 2.5): there the maximum is held to 3e-2 and the
        // logits to 1e-2 of their size, the cosine bound (which a wrong adjoint fails by far) stays as it is
        boolean strict = !ref.has("strictBounds") || ref.get("strictBounds").asBoolean();
        double relaxedMax = strict ? 0 : 3e-2, relaxedLogit = strict ? 0 : 1e-2;
        double logitFloor = 0;
        for (JsonNode f : ref.get("logitsFp32VsFp64")) {
            logitFloor = Math.max(logitFloor, f.asDouble());
        }
        for (JsonNode spread : ref.get("logitStdAcrossImages")) {
            assertTrue(spread.asDouble() > 0.5, "the head must make every logit move with the input: " + ref.get("logitStdAcrossImages"));
        }
        int len = c * s * s;
        int[] all = new int[labels];
        for (int k = 0; k < labels; k++) {
            all[k] = k;
        }
        GuidedGraph.Spec spec = new GuidedGraph.Spec("input", "classes", "gradient", "logits", c, s, labels);
        StringBuilder report = new StringBuilder(), failures = new StringBuilder();
        for (String kind : new String[]{"guided", "plain"}) {
            double worstRel = 0, worstCos = 1;
            int compared = 0;
            // guided: 1e-4 of the max (the bound) on images screened for float32 near-ties; guiding off
            // (a dense gradient through every ReLU): 1e-4, or twice the PyTorch fp32-vs-fp64 floor where higher
            double floor = 0;
            for (JsonNode f : ref.get("screening").get("plainFp32VsFp64")) {
                floor = Math.max(floor, f.asDouble());
            }
            double tolerance = Math.max(relaxedMax, kind.equals("guided") ? 1e-4 : Math.max(1e-4, 2 * floor));
            try (GuidedGraph g = new GuidedGraph(work.resolve(kind + ".onnx"), spec, "test " + kind, 2,
                    ai.onnxruntime.OrtSession.SessionOptions.OptLevel.valueOf(System.getProperty("guided.opt", "NO_OPT")))) {
                for (int i = 0; i < images; i++) {
                    float[] x = floats(work.resolve("input_" + i + ".f32"), len);
                    float[] want = floats(work.resolve(kind + "_" + i + ".f32"), labels * len);
                    float[] logits = floats(work.resolve("logits_" + i + ".f32"), labels);
                    GuidedGraph.Result r = g.run(x, 0, all);
                    for (int k = 0; k < labels; k++) {
                        assertEquals(logits[k], r.logits()[k], Math.max(Math.max(1e-4, relaxedLogit) * Math.max(1, Math.abs(logits[k])), 4 * logitFloor), "forward logit " + k);
                        double maxRef = 0, maxDiff = 0, dot = 0, na = 0, nb = 0;
                        for (int p = k * len; p < (k + 1) * len; p++) {
                            double a = r.gradient()[p], b = want[p];
                            maxRef = Math.max(maxRef, Math.abs(b));
                            maxDiff = Math.max(maxDiff, Math.abs(a - b));
                            dot += a * b;
                            na += a * a;
                            nb += b * b;
                        }
                        double rel = maxDiff / maxRef, cos = dot / Math.sqrt(na * nb);
                        assertTrue(maxRef > 0, kind + " reference of class " + k + " is all zero");
                        if (rel > tolerance || cos < 0.9999) {
                            failures.append(String.format(Locale.ROOT, "%s image %d class %d: max|d|/max|ref| = %.3e, cosine = %.8f%n", kind, i, k, rel, cos));
                        }
                        worstRel = Math.max(worstRel, rel);
                        worstCos = Math.min(worstCos, cos);
                        compared++;
                    }
                }
                // cost on this CPU (2 intra-op threads): one class per run, after the runs above warmed the session
                float[] x = floats(work.resolve("input_0.f32"), len);
                int reps = 3;
                long t0 = System.nanoTime();
                for (int rep = 0; rep < reps; rep++) {
                    g.run(x, 0, new int[]{rep % labels});
                }
                double msOne = (System.nanoTime() - t0) / 1e6 / reps;
                t0 = System.nanoTime();
                g.run(x, 0, all);
                double msAll = (System.nanoTime() - t0) / 1e6 / labels;
                report.append(String.format(Locale.ROOT, "%s: %d image x class maps, max |d|/max|ref| = %.2e (bound %.1e), min cosine = %.8f, "
                        + "%.0f ms per class alone, %.0f ms per class in a batch of %d%n", kind, compared, worstRel, tolerance, worstCos, msOne, msAll, labels));
            }
        }
        // the cost as the worker runs it: default session options (all graph optimisations, Conv+BN folded)
        try (GuidedGraph g = new GuidedGraph(work.resolve("guided.onnx"), spec, "test timing", 2)) {
            float[] x = floats(work.resolve("input_0.f32"), len);
            g.run(x, 0, all);
            long t0 = System.nanoTime();
            for (int rep = 0; rep < 3; rep++) {
                g.run(x, 0, new int[]{rep % labels});
            }
            double msOne = (System.nanoTime() - t0) / 1e6 / 3;
            t0 = System.nanoTime();
            g.run(x, 0, all);
            report.append(String.format(Locale.ROOT, "worker session (ALL_OPT, 2 threads): %.0f ms per class alone, %.0f ms per class in a batch of %d%n",
                    msOne, (System.nanoTime() - t0) / 1e6 / labels, labels));
        }
        report.append(String.format(Locale.ROOT, "forward logits: PyTorch fp32 vs fp64 floor %.2e%n", logitFloor));
        report.append(strict ? "bounds: strict (AVX-512)\n" : "bounds: relaxed (no AVX-512: max 3e-2, logits 1e-2, cosine 0.9999)\n");
        report.append("screening (PyTorch fp32 vs fp64, class 0): ").append(ref.get("screening")).append('\n');
        JsonNode unguided = ref.get("unguidedFinalRelu");
        report.append(String.format(Locale.ROOT, "final functional ReLU left unguided (captum, pytorch-grad-cam): max |d|/max|ref| = %.3f, "
                + "mean |d|/mean |ref| = %.3f%n", unguided.get("maxAbsDiffOverMaxAbsRef").asDouble(), unguided.get("meanAbsDiffOverMeanAbsRef").asDouble()));
        System.out.print("[guided-fidelity] " + arch + " " + head + " " + size + " px\n" + report.toString().replace("\n", "\n[guided-fidelity] "));
        System.out.println(printed.strip());
        assertEquals("", failures.toString(), "every class: max |d| <= " + (strict ? "1e-4" : "3e-2") + " max |ref| and cosine >= 0.9999");
    }

    static float[] floats(Path f, int expected) throws IOException {
        byte[] b = Files.readAllBytes(f);
        assertEquals(expected * 4L, b.length, f + " size");
        float[] v = new float[expected];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(v);
        return v;
    }
}
