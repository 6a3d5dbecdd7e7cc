package org.cxrgateway.inference;

import org.cxrgateway.schema.v2.WorkingImage;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every served architecture and head kind against PyTorch: seeded full-depth DenseNet-121/169/201, ResNet-50 (linear
 * head, and the COVID-19 paper's ResNet50+ GAP + Dense(32) + Dense(32) head) and VGG16-BN (an MLP over the flattened
 * map) at 64 x 64 so that the CPU cost stays small. Java preprocessing, ONNX Runtime logits and the host-side
 * Grad-CAM (ClassifierHead forward and back from the feature map alone) against autograd Grad-CAM on the same layer
 * (fidelity_reference.py): Grad-CAM within 1e-4, logits within 5e-4 of the largest logit. The head is spread over the test images first (spread_head.py, every
 * hidden layer too), so logits move with the input and hidden ReLU masks differ between images.
 */
class ArchitectureFidelityTest {

    static final Path WORK = Path.of("target/test-work/arch-fidelity");

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"densenet121,linear", "densenet169,linear", "densenet201,linear", "resnet50,linear", "resnet50,'mlp:32,32'",
            "vgg16_bn,'mlp:32,32'"})
    void logitsAndGradCamMatchPyTorch(String arch, String head) throws Exception {
        Path dir = WORK.resolve(arch + "-" + head.replace(':', '-').replace(',', '-')).toAbsolutePath();
        Py.run(600, Py.MAIN.resolve("make_demo_models.py").toString(), "--out", dir.toString(), "--only", "chest14",
                "--arch", arch, "--head", head, "--size", "64", "--embed", "--no-guided");
        Path pkgDir = dir.resolve("chest14");
        // images that differ as films do: a random-init network's features move with these, so the spread head
        // needs no huge weights (which would amplify float32 rounding in the backbone into the logits)
        List<WorkingImage> images = List.of(Fixtures.variedImage(300, 260, 8, 11), Fixtures.variedImage(200, 240, 16, 12),
                Fixtures.variedImage(224, 224, 8, 13), Fixtures.variedImage(256, 220, 8, 14));
        ModelPackage unspread = ModelPackage.open(pkgDir, dir.resolve("work"));
        Fixtures.writeFloats(Fidelity.preprocess(unspread, images), dir.resolve("spread-inputs.f32"));
        Py.run(600, Py.TEST.resolve("spread_head.py").toString(), pkgDir.toString(), dir.resolve("spread-inputs.f32").toString());
        ModelPackage pkg = ModelPackage.open(pkgDir, dir.resolve("work"));
        assertEquals(head.equals("linear"), pkg.head().linear(), "head kind as declared: " + pkg.head());
        assertEquals(arch, pkg.manifest().architecture());
        try (OrtModel m = new OrtModel(pkg, EngineKind.cpu, 2, null)) {
            m.warmUp(1); // the load-time check: the host head reproduces the graph's logits
        }
        Fidelity.Diffs d = Fidelity.check(pkg, dir.resolve("fidelity"), new int[]{0, 5, 13}, images);
        double spread = 0;
        int labels = pkg.manifest().labels().size();
        for (int c = 0; c < labels; c++) {
            double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < d.n(); i++) {
                min = Math.min(min, d.javaLogits()[i * labels + c]);
                max = Math.max(max, d.javaLogits()[i * labels + c]);
            }
            spread = Math.max(spread, max - min);
        }
        System.out.printf(java.util.Locale.ROOT, "[arch-fidelity] %s head %s (%s): features %dx%dx%d, logits max|d| %.2e, features %.2e, "
                        + "Grad-CAM max|d| %.2e, logit range across images %.2f%n", arch, head, pkg.head(), pkg.manifest().outputs().featureChannels(),
                pkg.manifest().outputs().featureSize(), pkg.manifest().outputs().featureSize(), d.logits(), d.features(), d.cam(), spread);
        assertTrue(spread > 1.0, "the logits must move with the input for a sensitive comparison, range " + spread);
        assertTrue(d.preprocessing() < 1e-3, "preprocessing " + d.preprocessing());
        double maxLogit = 0;
        for (float v : d.javaLogits()) {
            maxLogit = Math.max(maxLogit, Math.abs(v));
        }
        // logits: relative to the largest logit. float32 rounding differs through up to 200 layers (ONNX Runtime folds
        // BN into the convs), and the spread head amplifies it: measured 0.6e-5..1.3e-4 of the largest logit (VGG the
        // most: its flattened head reads every position); Grad-CAM, the bound, stays within 1e-5
        assertTrue(d.logits() / Math.max(1, maxLogit) < 5e-4, arch + " " + head + " logits max abs diff " + d.logits() + ", max |logit| " + maxLogit);
        assertTrue(d.cam() < 1e-4, arch + " " + head + " Grad-CAM max abs diff " + d.cam());
        Files.writeString(dir.resolve("result.txt"), d.toString());
    }
}
