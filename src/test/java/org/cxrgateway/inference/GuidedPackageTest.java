package org.cxrgateway.inference;

import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.GuidedMap;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.WorkingImage;
import org.cxrgateway.xai.GuidedGradCam;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;
import java.util.Locale;
import java.util.zip.Inflater;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The worker side of guided Grad-CAM on tiny packages made by make_demo_models.py: positive findings get a
 * GuidedMap (top max-secondary-captures by probability), a package without the guided graph still scores
 * with Grad-CAM only, and a guided graph that does not fit its model is refused at load naming the field.
 */
class GuidedPackageTest {

    static final Path WORK = Path.of("target/test-work/guided-package");

    private static Path pkg(String name, String id, String... extra) {
        Path out = WORK.resolve(name).toAbsolutePath();
        List<String> a = new java.util.ArrayList<>(List.of(Py.MAIN.resolve("make_demo_models.py").toString(), "--out", out.toString(),
                "--only", id, "--arch", "tiny", "--embed"));
        a.addAll(List.of(extra));
        Py.run(300, a.toArray(String[]::new));
        return out.resolve(id);
    }

    private static List<ModelRun> score(OrtModel model, int maxGuided, WorkingImage im) {
        Scorer s = new Scorer(List.of(model), maxGuided);
        Scorer.Image img = new Scorer.Image(Preprocessor.decode(im), im.getWidth(), im.getHeight());
        return s.score(List.of(img)).runs().get(0);
    }

    @Test
    void positiveFindingsGetGuidedMapsOnTheModelGrid() throws Exception {
        ModelPackage p = ModelPackage.open(pkg("with", "chest14"), WORK.resolve("work"));
        WorkingImage im = Fixtures.image(300, 260, 8, 1);
        try (OrtModel model = new OrtModel(p, EngineKind.cpu, 2, null)) {
            assertNotNull(model.guided(), "the package ships guided.onnx");
            model.warmUp(1);
            List<Finding> f = score(model, 2, im).get(0).getFindings();
            List<Finding> positives = f.stream().filter(Finding::getPositive).toList();
            assertTrue(positives.size() >= 3, "the seeded tiny model has several positives: " + positives.size());
            List<Finding> guided = f.stream().filter(x -> x.getGuided() != null).toList();
            assertEquals(2, guided.size(), "max 2 guided maps per image and model");
            double lowestGuided = guided.stream().mapToDouble(Finding::getProbability).min().orElseThrow();
            for (Finding x : f) {
                if (x.getGuided() == null && x.getPositive()) {
                    assertTrue(x.getProbability() <= lowestGuided, "guided maps go to the most probable positives");
                }
                if (!x.getPositive()) {
                    assertNull(x.getGuided());
                }
            }
            int size = p.manifest().input().size();
            for (Finding x : guided) {
                GuidedMap g = x.getGuided();
                assertEquals(size, g.getWidth());
                assertEquals(size, g.getHeight());
                // crop resize: the model saw the whole working image
                assertEquals(List.of(0, 0, 300, 260), List.of(g.getRegionX(), g.getRegionY(), g.getRegionWidth(), g.getRegionHeight()));
                assertTrue(g.getMaxAbs() > 0 && Float.isFinite(g.getMaxAbs()));
                byte[] raw = inflate(org.cxrgateway.message.WorkingImagePixels.bytes(g.getValues()), size * size);
                int nonZero = 0, extreme = 0;
                for (byte b : raw) {
                    nonZero += b != 0 ? 1 : 0;
                    extreme += Math.abs(b) == 127 ? 1 : 0;
                }
                assertTrue(extreme >= 1, "the largest magnitude maps to +-127");
                assertTrue(nonZero > size * size / 20, "a fine-grained map, not a blank: " + nonZero);
            }
            // the map equals guided gradient x upsampled Grad-CAM, recomputed here from the graph's own outputs
            Finding top = guided.get(0);
            int cls = labelIndex(p, top.getLabel());
            Preprocessor pre = new Preprocessor(p.manifest());
            float[] x = new float[pre.tensorLength()];
            pre.apply(Preprocessor.decode(im), im.getWidth(), im.getHeight(), x, 0);
            GuidedGraph.Result r = model.guided().run(x, 0, new int[]{cls});
            OrtModel.Output out = model.run(x, 1);
            int fc = model.featureChannels(), fs = model.featureSize();
            float[] cam = org.cxrgateway.xai.GradCam.map(out.features(), 0, fc, fs, fs, p.headWeight()[cls]);
            GuidedGradCam.Encoded want = GuidedGradCam.encode(GuidedGradCam.combine(r.gradient(), 0, 3, size, cam, fs, fs));
            assertEquals(want.maxAbs(), top.getGuided().getMaxAbs(), 1e-5 * want.maxAbs());
            byte[] a = inflate(want.deflated(), size * size), b = inflate(org.cxrgateway.message.WorkingImagePixels.bytes(top.getGuided().getValues()), size * size);
            int off = 0;
            for (int i = 0; i < a.length; i++) {
                off = Math.max(off, Math.abs(a[i] - b[i]));
            }
            assertTrue(off <= 1, "same map up to one quantisation step: " + off);

            // cost on this CPU, tiny model: ms per class
            long t0 = System.nanoTime();
            for (int rep = 0; rep < 5; rep++) {
                model.guided().run(x, 0, new int[]{cls});
            }
            System.out.printf(Locale.ROOT, "[guided-package] tiny model: %.1f ms per class%n", (System.nanoTime() - t0) / 1e6 / 5);
        }
    }

    @Test
    void packageWithoutGuidedGraphScoresWithGradCamOnly() {
        ModelPackage p = ModelPackage.open(pkg("without", "chest14", "--no-guided"), WORK.resolve("work"));
        assertNull(p.manifest().guided());
        try (OrtModel model = new OrtModel(p, EngineKind.cpu, 2, null)) {
            assertNull(model.guided());
            model.warmUp(1);
            List<Finding> f = score(model, 4, Fixtures.image(300, 260, 8, 1)).get(0).getFindings();
            assertTrue(f.stream().anyMatch(x -> x.getPositive() && x.getActivation() != null), "Grad-CAM still made");
            assertTrue(f.stream().allMatch(x -> x.getGuided() == null), "no guided map without the graph");
        }
    }

    @Test
    void mismatchedGuidedGraphIsRefusedNamingTheField() throws Exception {
        Path chest = pkg("mismatch-chest", "chest14");
        Path covid = pkg("mismatch-covid", "covid3");
        // a 3-class graph in a 14-label package: the logits output shape gives the class count away
        Files.copy(covid.resolve("guided.onnx"), chest.resolve("guided.onnx"), StandardCopyOption.REPLACE_EXISTING);
        ModelPackage p = ModelPackage.open(chest, WORK.resolve("work"));
        ModelPackageException e = assertThrows(ModelPackageException.class, () -> new OrtModel(p, EngineKind.cpu, 2, null));
        assertTrue(e.getMessage().contains("guided.outputs.logits"), e.getMessage());

        // manifest says another class count
        Path m = pkg("mismatch-classes", "chest14");
        String json = Files.readString(m.resolve("manifest.json")).replace("\"classes\": 14", "\"classes\": 13");
        Files.writeString(m.resolve("manifest.json"), json);
        ModelPackageException e2 = assertThrows(ModelPackageException.class, () -> ModelPackage.open(m, WORK.resolve("work")));
        assertTrue(e2.getMessage().contains("guided.classes"), e2.getMessage());

        // same shapes, other weights (another seed): refused at warm-up by the logits comparison
        Path other = pkg("mismatch-seed", "chest14", "--seed", "7");
        Path same = pkg("mismatch-base", "chest14");
        Files.copy(other.resolve("guided.onnx"), same.resolve("guided.onnx"), StandardCopyOption.REPLACE_EXISTING);
        ModelPackage q = ModelPackage.open(same, WORK.resolve("work"));
        OrtModel model = new OrtModel(q, EngineKind.cpu, 2, null);
        ModelPackageException e3 = assertThrows(ModelPackageException.class, () -> model.warmUp(1));
        assertTrue(e3.getMessage().contains("guided.file") && e3.getMessage().contains("weights"), e3.getMessage());
        // the failed warm-up closed the model; the registry's shutdown closes it again, without an error
        assertDoesNotThrow(model::close);
    }

    private static int labelIndex(ModelPackage p, String name) {
        for (int i = 0; i < p.manifest().labels().size(); i++) {
            if (p.manifest().labels().get(i).name().equals(name)) {
                return i;
            }
        }
        throw new AssertionError(name);
    }

    private static byte[] inflate(byte[] packed, int n) throws Exception {
        Inflater inf = new Inflater();
        try {
            inf.setInput(packed);
            byte[] out = new byte[n];
            int k = 0;
            while (k < n && !inf.finished()) {
                k += inf.inflate(out, k, n - k);
            }
            assertEquals(n, k);
            return out;
        } finally {
            inf.end();
        }
    }
}
