package org.cxrgateway.inference;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.UnaryOperator;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Manifest and ONNX signature validation: a bad package fails at load with an error that names the field. */
class ModelPackageTest {

    static final Path WORK = Path.of("target/test-work/packages");
    static Path tiny;

    @BeforeAll
    static void generate() {
        tiny = Py.demoPackage(WORK.resolve("gen"), "covid3", true);
    }

    /** A copy of the tiny package with its manifest text edited. */
    static Path variant(String name, UnaryOperator<String> edit) throws IOException {
        Path dir = WORK.resolve(name);
        Files.createDirectories(dir);
        try (Stream<Path> s = Files.list(tiny)) {
            for (Path p : s.toList()) {
                Files.copy(p, dir.resolve(p.getFileName()), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            }
        }
        Path m = dir.resolve("manifest.json");
        Files.writeString(m, edit.apply(Files.readString(m)));
        return dir;
    }

    static String loadError(Path dir) {
        ModelPackageException e = assertThrows(ModelPackageException.class, () -> {
            ModelPackage p = ModelPackage.open(dir, WORK.resolve("work"));
            new OrtModel(p, EngineKind.cpu, 1, null).close();
        });
        return e.getMessage();
    }

    @Test
    void validPackageLoadsWithHeadFromInitializer() {
        ModelPackage p = ModelPackage.open(tiny, WORK.resolve("work"));
        assertEquals("covid3", p.manifest().id());
        assertEquals(3, p.headWeight().length);
        assertEquals(p.manifest().outputs().featureChannels(), p.headWeight()[0].length);
        assertEquals(3, p.headBias().length);
        assertTrue(p.manifest().reportedIndices().length == 1 && p.manifest().reportedIndices()[0] == 2, "only COVID-19 is reported");
        assertTrue(!p.manifest().diagnostic());
        try (OrtModel m = new OrtModel(p, EngineKind.cpu, 1, null)) {
            m.warmUp(2);
        }
    }

    @Test
    void schemaErrorsNameTheField() throws IOException {
        String e = loadError(variant("bad-threshold", s -> s.replace("\"threshold\": 0.5", "\"threshold\": 1.5")));
        assertTrue(e.contains("threshold"), e);
        e = loadError(variant("bad-activation", s -> s.replace("\"softmax\"", "\"tanh\"")));
        assertTrue(e.contains("activation"), e);
        e = loadError(variant("missing-outputs", s -> s.replace("\"outputs\"", "\"outputz\"")));
        assertTrue(e.contains("outputs"), e);
        e = loadError(variant("bad-reported", s -> s.replace("\"reportedLabels\": [\n    \"COVID-19\"", "\"reportedLabels\": [\n    \"Flu\"")));
        assertTrue(e.contains("reportedLabels") && e.contains("Flu"), e);
        e = loadError(variant("xrv-3ch", s -> s.replace("\"imagenet\"", "\"xrv\"")));
        assertTrue(e.contains("input.channels"), e);
    }

    @Test
    void signatureMismatchNamesTheField() throws IOException {
        String e = loadError(variant("bad-input-name", s -> s.replace("\"name\": \"input\"", "\"name\": \"image\"")));
        assertTrue(e.contains("input.name") && e.contains("'image'"), e);
        e = loadError(variant("bad-features-name", s -> s.replace("\"features\": \"features\"", "\"features\": \"feats\"")));
        assertTrue(e.contains("outputs.features") && e.contains("'feats'"), e);
        e = loadError(variant("bad-size", s -> s.replace("\"size\": 224", "\"size\": 256")));
        assertTrue(e.contains("input") && e.contains("256"), e);
        e = loadError(variant("bad-channels", s -> s.replaceFirst("\"featureChannels\": \\d+", "\"featureChannels\": 99")));
        assertTrue(e.contains("featureChannels") || e.contains("head.weight"), e);
        e = loadError(variant("bad-head", s -> s.replace("\"classifier.weight\"", "\"fc.weight\"")));
        assertTrue(e.contains("fc.weight"), e);
        e = loadError(variant("bad-labels", s -> s.replace("{\n      \"name\": \"Normal\"", "{\n      \"name\": \"Other\",\n      \"code\": {\"value\": \"1\", \"scheme\": \"99CXR\", \"meaning\": \"x\"},\n      \"threshold\": 0.5\n    },\n    {\n      \"name\": \"Normal\"")));
        assertTrue(e.contains("head.weight") || e.contains("logits") || e.contains("guided.classes"), e);
    }

    @Test
    void zipPackageLoads() throws IOException {
        Path zip = WORK.resolve("covid3-tiny.zip");
        try (var out = new java.util.zip.ZipOutputStream(Files.newOutputStream(zip)); Stream<Path> s = Files.list(tiny)) {
            for (Path p : s.toList()) {
                out.putNextEntry(new java.util.zip.ZipEntry(p.getFileName().toString()));
                Files.copy(p, out);
                out.closeEntry();
            }
        }
        ModelPackage p = ModelPackage.open(zip, WORK.resolve("work"));
        assertEquals("covid3", p.manifest().id());
    }
}
