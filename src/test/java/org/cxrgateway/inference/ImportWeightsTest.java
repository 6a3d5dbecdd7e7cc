package org.cxrgateway.inference;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * import_weights.py on locally generated checkpoints of both foreign layouts: the package it writes
 * loads in Java and reproduces the ORIGINAL checkpoint's logits (computed by PyTorch before the
 * conversion) on the same input, and its preprocessing/Grad-CAM pass the fidelity check.
 */
class ImportWeightsTest {

    @ParameterizedTest
    @ValueSource(strings = {"chexnet", "xrv"})
    void convertedCheckpointReproducesTheOriginalModel(String kind) throws Exception {
        Path work = Path.of("target/test-work/import/" + kind).toAbsolutePath();
        Py.run(300, Py.TEST.resolve("make_checkpoints.py").toString(), kind, work.toString());
        Py.run(300, Py.MAIN.resolve("import_weights.py").toString(), kind, work.resolve("checkpoint.pt").toString(),
                "--out", work.resolve("pkg").toString(), "--arch", "tiny", "--version", "9.9");
        ModelPackage pkg = ModelPackage.open(work.resolve("pkg"), work.resolve("unpacked"));
        ModelManifest m = pkg.manifest();
        assertEquals(kind, m.id());
        assertEquals("9.9", m.version());
        float[] input = Fixtures.readFloats(work.resolve("input.f32"));
        float[] ref = Fixtures.readFloats(work.resolve("logits.f32"));
        try (OrtModel model = new OrtModel(pkg, EngineKind.cpu, 2, null)) {
            float[] logits = model.run(input, 2).logits();
            double d = Fixtures.maxAbsDiff(logits, 0, ref, 0, ref.length);
            System.out.printf("import %s: logits vs original checkpoint max abs diff %.3g%n", kind, d);
            assertTrue(d < 1e-4, kind + " logits differ from the original checkpoint by " + d);
        }
        if (kind.equals("xrv")) {
            assertEquals(1, m.input().channels());
            assertEquals(2, m.formatVersion());
            assertTrue(m.preprocessing().upstream().contains("TorchXRayVision"), m.preprocessing().upstream());
            assertEquals("skimage-linear", m.preprocessing().steps().get(2).filter());
            assertEquals(18, m.labels().size());
            assertEquals(17, m.reportedIndices().length, "the output without an operating threshold is not reported");
            assertTrue(m.labels().get(0).threshold() >= 0.2 && m.labels().get(0).threshold() <= 0.7, "op_threshs became thresholds");
        } else {
            assertEquals(3, m.input().channels());
            assertEquals(2, m.formatVersion());
            assertTrue(m.preprocessing().upstream().contains("CheXNet"), m.preprocessing().upstream());
            assertEquals(256, m.preprocessing().steps().get(0).size(), "chexnet preset: Resize(256)");
            assertEquals(224, m.preprocessing().steps().get(1).size(), "chexnet preset: CenterCrop(224)");
            assertEquals(14, m.labels().size());
        }
        Fidelity.Diffs d = Fidelity.check(pkg, work.resolve("fidelity"), new int[]{0, 3}, Fidelity.images8());
        // xrv tensors span [-1024, 1024]: the 1e-3 bound applies per unit of the [0, 1] image, i.e. / 2048
        double preScale = kind.equals("xrv") ? 2048 : 1;
        System.out.printf("import %s fidelity: preprocessing %.3g (range-relative %.3g), logits %.3g, grad-cam %.3g%n",
                kind, d.preprocessing(), d.preprocessing() / preScale, d.logits(), d.cam());
        assertTrue(d.preprocessing() / preScale < 1e-3 && d.logits() < 1e-4 && d.cam() < 1e-4, d.toString());
    }

    /**
     * torchvision state dicts of the other architectures (full size, 224 x 224): the architecture and head are
     * recognised from the keys, the package reproduces torchvision's own forward of the original model, and its
     * Grad-CAM (host head forward and back) passes the fidelity check against autograd.
     */
    @ParameterizedTest
    @CsvSource({"resnet50plus,resnet50,COVID-19,sigmoid,mlp", "vgg16_bn,vgg16_bn,'Normal,Pneumonia,COVID-19',softmax,mlp",
            "densenet169,densenet169,'Pneumonia,COVID-19',sigmoid,linear"})
    void torchvisionCheckpointReproducesTheOriginalModel(String kind, String arch, String labels, String activation, String head) throws Exception {
        Path work = Path.of("target/test-work/import/" + kind).toAbsolutePath();
        Py.run(300, Py.TEST.resolve("make_checkpoints.py").toString(), kind, work.toString());
        Py.run(600, Py.MAIN.resolve("import_weights.py").toString(), "torchvision", work.resolve("checkpoint.pt").toString(),
                "--out", work.resolve("pkg").toString(), "--labels", labels, "--activation", activation, "--id", kind);
        ModelPackage pkg = ModelPackage.open(work.resolve("pkg"), work.resolve("unpacked"));
        ModelManifest m = pkg.manifest();
        assertEquals(arch, m.architecture());
        assertEquals(head.equals("linear"), pkg.head().linear(), pkg.head().toString());
        assertEquals(activation, m.activation());
        assertEquals(labels.split(",").length, m.labels().size());
        assertTrue(m.guided() != null, "the guided graph is written for every architecture");
        float[] input = Fixtures.readFloats(work.resolve("input.f32"));
        float[] ref = Fixtures.readFloats(work.resolve("logits.f32"));
        try (OrtModel model = new OrtModel(pkg, EngineKind.cpu, 2, null)) {
            model.warmUp(1); // host head and guided graph agree with the model
            float[] logits = model.run(input, 2).logits();
            double d = 0;
            for (int i = 0; i < ref.length; i++) {
                d = Math.max(d, Math.abs(logits[i] - ref[i]) / Math.max(1, Math.abs(ref[i])));
            }
            System.out.printf("import torchvision %s (%s, %s): logits vs torchvision's forward of the original, max rel diff %.3g%n",
                    kind, arch, pkg.head(), d);
            assertTrue(d < 1e-4, kind + " logits differ from the original checkpoint by " + d);
        }
        Fidelity.Diffs d = Fidelity.check(pkg, work.resolve("fidelity"), new int[]{0, m.labels().size() - 1}, Fidelity.images8());
        System.out.printf("import torchvision %s fidelity: preprocessing %.3g, logits %.3g, grad-cam %.3g%n", kind, d.preprocessing(), d.logits(), d.cam());
        assertTrue(d.preprocessing() < 1e-3 && d.cam() < 1e-4, d.toString());
    }

    @Test
    void otherArchitecturesAreRefusedNamingTheKeys() throws Exception {
        Path work = Path.of("target/test-work/import/resnet18").toAbsolutePath();
        Py.run(300, Py.TEST.resolve("make_checkpoints.py").toString(), "resnet18", work.toString());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Py.run(300, Py.MAIN.resolve("import_weights.py").toString(),
                "torchvision", work.resolve("checkpoint.pt").toString(), "--out", work.resolve("pkg").toString(), "--labels", "Pneumonia,COVID-19"));
        assertTrue(e.getMessage().contains("not a supported torchvision architecture") && e.getMessage().contains("nearest is resnet50")
                && e.getMessage().contains("layer1.0.conv1.weight [64, 64, 3, 3] vs [64, 64, 1, 1]"), e.getMessage());
        assertTrue(!Files.exists(work.resolve("pkg/manifest.json")), "no package is written");
    }

    @Test
    void presetsAndSpecFilesNameTheirUpstream() throws Exception {
        Path work = Path.of("target/test-work/import/presets").toAbsolutePath();
        Py.run(300, Py.TEST.resolve("make_checkpoints.py").toString(), "chexnet", work.toString());
        String ckpt = work.resolve("checkpoint.pt").toString();
        Py.run(300, Py.MAIN.resolve("import_weights.py").toString(), "chexnet", ckpt, "--out", work.resolve("jrzech").toString(),
                "--arch", "tiny", "--preset", "jrzech");
        ModelManifest j = ModelPackage.open(work.resolve("jrzech"), work.resolve("u1")).manifest();
        assertTrue(j.preprocessing().upstream().contains("jrzech"), j.preprocessing().upstream());
        assertEquals(224, j.preprocessing().steps().get(0).size(), "jrzech: Resize(224)");
        Path spec = work.resolve("spec.json");
        Files.writeString(spec, """
                {"upstream": "my lab's pipeline", "steps": [{"op": "resize", "to": "exact", "size": 256, "filter": "torch-bilinear-antialias"},
                 {"op": "channels", "count": 3}, {"op": "normalize", "kind": "per-image"}]}""");
        Py.run(300, Py.MAIN.resolve("import_weights.py").toString(), "chexnet", ckpt, "--out", work.resolve("file").toString(),
                "--arch", "tiny", "--preprocessing", spec.toString());
        ModelManifest f = ModelPackage.open(work.resolve("file"), work.resolve("u2")).manifest();
        assertEquals("my lab's pipeline", f.preprocessing().upstream());
        assertEquals(256, f.input().size(), "the input size follows the spec");
        Files.writeString(spec, """
                {"upstream": "x", "steps": [{"op": "resize", "to": "exact", "size": 256, "filter": "lanczos"}, {"op": "normalize", "kind": "xrv"}]}""");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Py.run(300, Py.MAIN.resolve("import_weights.py").toString(),
                "chexnet", ckpt, "--out", work.resolve("bad").toString(), "--arch", "tiny", "--preprocessing", spec.toString()));
        assertTrue(e.getMessage().contains("filter must be one of"), e.getMessage());
    }
}
