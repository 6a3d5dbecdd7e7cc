package org.cxrgateway.inference;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.cxrgateway.message.WorkingImagePixels;
import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.WorkingImage;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Java Preprocessor against the libraries themselves: every spec and image goes through
 * src/main/python/cxr_preprocessing.py (PIL via torchvision's resize, torch F.interpolate, skimage
 * resize) and through Preprocessor; max abs difference per element &lt; 1e-3 on 8-bit input. The
 * same comparison is the proof that one spec drives training (the Python module) and serving.
 */
class PreprocessorLibraryTest {

    static final Path WORK = Path.of("target/test-work/preprocessor-library").toAbsolutePath();
    static final ObjectMapper JSON = new ObjectMapper();
    static JsonNode presets;

    /** Sizes: non-integer downscale, the default working size, an upscale, a 2048x2500 working image. */
    static final int[][] SIZES = {{517, 433}, {1024, 1024}, {200, 240}, {839, 1024}};

    @BeforeAll
    static void presets() throws IOException {
        Files.createDirectories(WORK);
        Py.run(120, Py.TEST.resolve("preprocessing_reference.py").toString(), WORK.toString(), "presets");
        presets = JSON.readTree(WORK.resolve("presets.json").toFile());
    }

    /** A chest-like 8-bit image: smooth body, sharp collimation edge, a bright marker, noise. */
    static int[] image(int w, int h, long seed) {
        Random rnd = new Random(seed);
        int[] px = new int[w * h];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                double u = (x - w / 2.0) / w, v = (y - h / 2.0) / h;
                double body = Math.exp(-(u * u / 0.12 + v * v / 0.15));
                double lungs = Math.exp(-((Math.abs(u) - 0.17) * (Math.abs(u) - 0.17) / 0.006 + (v + 0.05) * (v + 0.05) / 0.04));
                double val = 0.1 + 0.7 * body - 0.35 * lungs + 0.04 * rnd.nextGaussian();
                if (x < w / 20 || y > h - h / 25) {
                    val = 0; // collimation
                }
                if (x > w * 0.8 && x < w * 0.86 && y > h * 0.1 && y < h * 0.15) {
                    val = 1; // marker
                }
                px[y * w + x] = (int) Math.round(Math.min(1, Math.max(0, val)) * 255);
            }
        }
        return px;
    }

    static ModelManifest manifest(int version, JsonNode preprocessing, int channels, int size) throws IOException {
        ObjectNode m = (ObjectNode) JSON.readTree(Files.readAllBytes(Path.of("src/test/resources/tiny-models/chest14/manifest.json")));
        m.put("formatVersion", version);
        m.set("preprocessing", preprocessing);
        ((ObjectNode) m.get("input")).put("channels", channels).put("size", size);
        return ModelManifest.parse(JSON.writeValueAsBytes(m), "test");
    }

    record Case(String name, ModelManifest manifest, JsonNode spec) {
    }

    static JsonNode spec(String json) throws IOException {
        return JSON.readTree(json);
    }

    static List<Case> cases() throws IOException {
        List<Case> c = new ArrayList<>();
        c.add(new Case("chexnet preset", manifest(2, presets.get("chexnet"), 3, 224), presets.get("chexnet")));
        c.add(new Case("jrzech preset", manifest(2, presets.get("jrzech"), 3, 224), presets.get("jrzech")));
        c.add(new Case("xrv preset", manifest(2, presets.get("xrv"), 1, 224), presets.get("xrv")));
        JsonNode bicubic = spec("""
                {"upstream": "test", "steps": [{"op": "resize", "to": "exact", "size": 160, "filter": "pil-bicubic"},
                 {"op": "channels", "count": 1}, {"op": "normalize", "kind": "per-image"}]}""");
        c.add(new Case("pil-bicubic exact, per-image", manifest(2, bicubic, 1, 160), bicubic));
        JsonNode aa = spec("""
                {"upstream": "test", "steps": [{"op": "center-crop", "fraction": 0.875, "offset": "floor"},
                 {"op": "resize", "to": "exact", "size": 192, "filter": "torch-bilinear-antialias"},
                 {"op": "channels", "count": 3}, {"op": "normalize", "kind": "fixed", "mean": [0.5], "std": [0.25]}]}""");
        c.add(new Case("fraction crop, torch antialias, fixed", manifest(2, aa, 3, 192), aa));
        JsonNode torch = spec("""
                {"upstream": "test", "steps": [{"op": "resize", "to": "short-side", "size": 240, "filter": "torch-bilinear"},
                 {"op": "center-crop", "size": 224}, {"op": "channels", "count": 3}, {"op": "normalize", "kind": "imagenet"}]}""");
        c.add(new Case("torch bilinear short side, imagenet", manifest(2, torch, 3, 224), torch));
        JsonNode sk = spec("""
                {"upstream": "test", "steps": [{"op": "center-crop", "square": true, "offset": "torchvision"},
                 {"op": "resize", "to": "exact", "size": 224, "filter": "skimage-linear"},
                 {"op": "channels", "count": 3}, {"op": "normalize", "kind": "fixed", "mean": [0.4, 0.5, 0.6], "std": [0.2, 0.3, 0.4]}]}""");
        c.add(new Case("skimage on [0, 1], fixed per channel", manifest(2, sk, 3, 224), sk));
        JsonNode longSide = spec("""
                {"upstream": "test", "steps": [{"op": "resize", "to": "long-side", "size": 256, "filter": "pil-bilinear"},
                 {"op": "center-crop", "size": 180, "offset": "xrv"}, {"op": "normalize", "kind": "xrv"},
                 {"op": "resize", "to": "exact", "size": 128, "filter": "skimage-linear"}]}""");
        c.add(new Case("long side, xrv crop, resize after normalize", manifest(2, longSide, 1, 128), longSide));
        // formatVersion 1 keeps its meaning: the same tensor as the equivalent steps run by the libraries
        ObjectNode v1 = JSON.createObjectNode().put("crop", "center").put("normalisation", "imagenet");
        c.add(new Case("v1 center imagenet", manifest(1, v1, 3, 224), spec("""
                {"upstream": "v1", "steps": [{"op": "center-crop", "square": true, "offset": "floor"},
                 {"op": "resize", "to": "exact", "size": 224, "filter": "torch-bilinear"},
                 {"op": "channels", "count": 3}, {"op": "normalize", "kind": "imagenet"}]}""")));
        ObjectNode v1x = JSON.createObjectNode().put("crop", "resize").put("normalisation", "xrv");
        c.add(new Case("v1 resize xrv", manifest(1, v1x, 1, 224), spec("""
                {"upstream": "v1", "steps": [{"op": "resize", "to": "exact", "size": 224, "filter": "torch-bilinear"},
                 {"op": "channels", "count": 1}, {"op": "normalize", "kind": "xrv"}]}""")));
        return c;
    }

    @Test
    void javaEqualsTheLibraries() throws Exception {
        List<Case> cases = cases();
        List<Map<String, Object>> req = new ArrayList<>();
        Map<String, float[]> java = new LinkedHashMap<>();
        for (int i = 0; i < SIZES.length; i++) {
            int w = SIZES[i][0], h = SIZES[i][1];
            int[] px = image(w, h, i);
            byte[] raw = new byte[px.length];
            float[] gray = new float[px.length];
            for (int k = 0; k < px.length; k++) {
                raw[k] = (byte) px[k];
                gray[k] = px[k] / 255f;
            }
            Files.write(WORK.resolve("img_" + i + ".raw"), raw);
            for (int c = 0; c < cases.size(); c++) {
                Case cs = cases.get(c);
                Preprocessor p = new Preprocessor(cs.manifest());
                float[] t = new float[p.tensorLength()];
                p.apply(gray, w, h, t, 0);
                String out = "out_" + c + "_" + i + ".f32";
                java.put(out, t);
                req.add(Map.of("spec", cs.spec(), "image", "img_" + i + ".raw", "width", w, "height", h, "out", out));
            }
        }
        JSON.writeValue(WORK.resolve("cases.json").toFile(), req);
        Py.run(300, Py.TEST.resolve("preprocessing_reference.py").toString(), WORK.toString());
        StringBuilder failures = new StringBuilder();
        for (int c = 0; c < cases.size(); c++) {
            double worst = 0;
            for (int i = 0; i < SIZES.length; i++) {
                String out = "out_" + c + "_" + i + ".f32";
                float[] ref = Fixtures.readFloats(WORK.resolve(out));
                float[] t = java.get(out);
                assertEquals(t.length, ref.length, cases.get(c).name() + ": tensor length");
                worst = Math.max(worst, Fixtures.maxAbsDiff(t, 0, ref, 0, ref.length));
            }
            System.out.printf("preprocessing %-45s max abs diff vs library %.3g%n", cases.get(c).name(), worst);
            if (!(worst < 1e-3)) {
                failures.append(cases.get(c).name()).append(": ").append(worst).append('\n');
            }
        }
        assertTrue(failures.isEmpty(), "Java differs from the library:\n" + failures);
    }

    /**
     * The worker reads a working image's rows from the message's pixel bytes where a torch resize comes first
     * (GrayImage), and decodes it whole otherwise: for every case, 8-bit and 16-bit, the very floats of the tensor
     * that the decoded image gives, which javaEqualsTheLibraries compares with the libraries.
     */
    @Test
    void pixelBytesGiveTheDecodedImagesTensor() throws Exception {
        List<Case> cases = cases();
        for (int bits : new int[]{8, 16}) {
            for (int i = 0; i < SIZES.length; i++) {
                int w = SIZES[i][0], h = SIZES[i][1];
                int[] px = image(w, h, i);
                byte[] raw = new byte[px.length * bits / 8];
                for (int k = 0; k < px.length; k++) {
                    if (bits == 8) {
                        raw[k] = (byte) px[k];
                    } else { // over the whole 16-bit range, low byte first
                        int v = Math.min(65535, px[k] * 257 + k % 7);
                        raw[2 * k] = (byte) v;
                        raw[2 * k + 1] = (byte) (v >> 8);
                    }
                }
                WorkingImage img = WorkingImagePixels.encode(w, h, bits, raw, PixelEncoding.RAW);
                float[] gray = Preprocessor.decode(img);
                for (Case cs : cases) {
                    Preprocessor p = new Preprocessor(cs.manifest());
                    float[] want = new float[p.tensorLength()];
                    float[] got = new float[p.tensorLength()];
                    p.apply(gray, w, h, want, 0);
                    p.apply(GrayImage.of(img, null), got, 0);
                    assertArrayEquals(want, got, cs.name() + ", " + bits + "-bit " + w + "x" + h);
                }
            }
        }
    }

    @Test
    void cropIsTheWorkingImageRegionTheModelSees() throws Exception {
        // chexnet on 839x1024: short side 256 -> 256x312, crop 224 at (16, 44): x 16/256*839, y 44/312*1024
        Preprocessor.Crop c = new Preprocessor(manifest(2, presets.get("chexnet"), 3, 224)).crop(839, 1024);
        assertEquals(new Preprocessor.Crop(52, 144, 734, 735), c);
        // xrv: the centred square of XRayCenterCrop (top 1024 // 2 - 839 // 2), the resize does not change the region
        assertEquals(new Preprocessor.Crop(0, 93, 839, 839), new Preprocessor(manifest(2, presets.get("xrv"), 1, 224)).crop(839, 1024));
    }

    @Test
    void specsTheGatewayCannotServeAreRejected() throws Exception {
        JsonNode noFixedSide = spec("""
                {"upstream": "t", "steps": [{"op": "resize", "to": "short-side", "size": 224, "filter": "pil-bilinear"},
                 {"op": "channels", "count": 3}, {"op": "normalize", "kind": "imagenet"}]}""");
        ModelPackageException e = assertThrows(ModelPackageException.class, () -> manifest(2, noFixedSide, 3, 224));
        assertTrue(e.getMessage().contains("224x224"), e.getMessage());
        JsonNode pilAfterNormalize = spec("""
                {"upstream": "t", "steps": [{"op": "normalize", "kind": "xrv"},
                 {"op": "resize", "to": "exact", "size": 224, "filter": "pil-bilinear"}]}""");
        e = assertThrows(ModelPackageException.class, () -> manifest(2, pilAfterNormalize, 1, 224));
        assertTrue(e.getMessage().contains("before normalize"), e.getMessage());
        JsonNode unknownFilter = spec("""
                {"upstream": "t", "steps": [{"op": "resize", "to": "exact", "size": 224, "filter": "nearest"},
                 {"op": "normalize", "kind": "xrv"}]}""");
        assertThrows(ModelPackageException.class, () -> manifest(2, unknownFilter, 1, 224));
        // a version-1 manifest cannot carry steps, nor a version-2 one crop/normalisation
        assertThrows(ModelPackageException.class, () -> manifest(1, presets.get("xrv"), 1, 224));
        assertThrows(ModelPackageException.class, () -> manifest(2, JSON.createObjectNode().put("crop", "center").put("normalisation", "xrv"), 1, 224));
        // an image the crop does not fit is a clear error, not a crash
        Preprocessor p = new Preprocessor(manifest(2, spec("""
                {"upstream": "t", "steps": [{"op": "center-crop", "size": 224}, {"op": "normalize", "kind": "xrv"}]}"""), 1, 224));
        IllegalArgumentException bad = assertThrows(IllegalArgumentException.class, () -> p.crop(200, 300));
        assertTrue(bad.getMessage().contains("200x300"), bad.getMessage());
    }
}
