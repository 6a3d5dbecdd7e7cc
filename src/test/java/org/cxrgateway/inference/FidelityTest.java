package org.cxrgateway.inference;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The proof that the numbers are right: Java preprocessing, ONNX Runtime logits and host-side
 * Grad-CAM against Debian PyTorch (autograd Grad-CAM on the post-ReLU features) on the same weights
 * and inputs. The DenseNet-121 case runs the shipped chest14 demo package exactly as the app
 * materialises it (weights regenerated in Java from the recipe).
 */
class FidelityTest {

    static final Path WORK = Path.of("target/test-work/fidelity");

    private static void assertFidelity(Fidelity.Diffs d, String what) {
        System.out.printf("fidelity %s: preprocessing %.3g, logits %.3g, features %.3g, grad-cam %.3g%n",
                what, d.preprocessing(), d.logits(), d.features(), d.cam());
        assertTrue(d.preprocessing() < 1e-3, what + " preprocessing max abs diff " + d.preprocessing());
        assertTrue(d.logits() < 1e-4, what + " logits max abs diff " + d.logits());
        assertTrue(d.cam() < 1e-4, what + " Grad-CAM max abs diff " + d.cam());
        double spread = 0;
        for (float v : d.javaLogits()) {
            spread = Math.max(spread, Math.abs(v));
        }
        assertTrue(spread > 1e-2, "logits are all ~0: the comparison would prove nothing");
    }

    @Test
    void tinySigmoidResize() throws Exception {
        Path dir = Py.demoPackage(WORK.resolve("pkgs"), "chest14", true);
        ModelPackage pkg = ModelPackage.open(dir, WORK.resolve("work"));
        assertFidelity(Fidelity.check(pkg, WORK.resolve("tiny-chest14"), new int[]{0, 5, 13}), "tiny chest14");
    }

    @Test
    void tinySoftmaxCenterCrop() throws Exception {
        Path dir = Py.demoPackage(WORK.resolve("pkgs"), "covid3", true);
        ModelPackage pkg = ModelPackage.open(dir, WORK.resolve("work"));
        assertFidelity(Fidelity.check(pkg, WORK.resolve("tiny-covid3"), new int[]{0, 1, 2}), "tiny covid3");
    }

    @Test
    void shippedDenseNet121() throws Exception {
        ModelPackage pkg = ModelPackage.builtIn("chest14", WORK.resolve("builtin"));
        assertFidelity(Fidelity.check(pkg, WORK.resolve("densenet121-chest14"), new int[]{0, 7, 13}), "densenet121 chest14");
    }
}
