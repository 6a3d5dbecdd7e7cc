package org.cxrgateway.inference;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.schema.v2.Code;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.schema.v2.WorkingImage;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Parametric Map carries the Grad-CAM PyTorch computes: the gateway's path (Java preprocessing, ONNX
 * Runtime, host-side Grad-CAM, the report builder's float map) against autograd Grad-CAM on the same working
 * image, read back from the Part 10 file with pydicom through its Real World Value Mapping, compared on the
 * map's grid inside the rectangle the model saw.
 */
class ParametricMapFidelityTest {

    static final Path WORK = Path.of("target/test-work/pm-fidelity");
    static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void tinySigmoidResize() throws Exception {
        check("chest14", new int[]{0, 5});
    }

    @Test
    void tinySoftmaxCenterCrop() throws Exception {
        check("covid3", new int[]{1});
    }

    private static void check(String id, int[] classes) throws Exception {
        Path work = Files.createDirectories(WORK.resolve(id).toAbsolutePath());
        Path dir = Py.demoPackage(WORK.resolve("pkgs"), id, true);
        ModelPackage pkg = ModelPackage.open(dir, WORK.resolve("work"));
        // two images of one size whose structure differs, so that the negative control can be compared
        List<WorkingImage> imgs = List.of(Fixtures.image(300, 260, 8, 1), Fixtures.image(300, 260, 8, 4));
        Preprocessor pre = new Preprocessor(pkg.manifest());
        int len = pre.tensorLength();
        float[] tensor = new float[imgs.size() * len];
        List<Scorer.Image> images = new ArrayList<>();
        for (int i = 0; i < imgs.size(); i++) {
            WorkingImage im = imgs.get(i);
            float[] gray = Preprocessor.decode(im);
            pre.apply(gray, im.getWidth(), im.getHeight(), tensor, i * len);
            images.add(new Scorer.Image(gray, im.getWidth(), im.getHeight()));
        }
        List<Map<String, Object>> cases = new ArrayList<>();
        try (OrtModel model = new OrtModel(pkg, EngineKind.cpu, 2, null)) {
            Scorer scorer = new Scorer(List.of(model));
            OrtModel.Output out = model.run(tensor, imgs.size());
            for (int cls : classes) {
                for (int i = 0; i < imgs.size(); i++) {
                    WorkingImage im = imgs.get(i);
                    Finding f = Finding.newBuilder().setLabel(pkg.manifest().labels().get(cls).name())
                            .setCode(new Code("C" + cls, "99CXR", "class " + cls)).setProbability(0.9f).setThreshold(0.5f)
                            .setPositive(true).setActivation(scorer.activation(model, pre, out, i, cls, images.get(i))).build();
                    Path pm = work.resolve("pm_" + cls + "_" + i + ".dcm");
                    Files.write(pm, parametricMap(im, f, cls, i));
                    assertEquals(List.of(), Tools.dciodvfyErrors(pm), "dciodvfy " + pm);
                    Path raw = work.resolve("img_" + i + ".raw");
                    Fixtures.writeRaw(im, raw);
                    cases.add(Map.of("pm", pm.getFileName().toString(), "image", raw.toString(), "width", im.getWidth(),
                            "height", im.getHeight(), "bits", im.getBitsPerPixel(), "cls", cls));
                }
            }
        }
        JSON.writeValue(work.resolve("request.json").toFile(), Map.of("package", dir.toAbsolutePath().toString(), "cases", cases));
        Py.run(300, Py.TEST.resolve("pm_cam_reference.py").toString(), work.toString());
        JsonNode result = JSON.readTree(work.resolve("result.json").toFile());
        for (int k = 0; k < result.size(); k++) {
            JsonNode r = result.get(k);
            System.out.printf("parametric map %s case %d (class %s, grid %s, rect %s): correlation %.6f, control %.4f, outside %.3g%n",
                    id, k, cases.get(k).get("cls"), r.get("grid"), r.get("rect"), r.get("correlation").asDouble(),
                    r.get("control").asDouble(), r.get("outside").asDouble());
            assertTrue(r.get("std").asDouble() > 0.05, "the map is nearly flat: the comparison would prove nothing " + r);
            assertTrue(r.get("correlation").asDouble() >= 0.999, "PM vs PyTorch Grad-CAM " + r);
            assertEquals(0.0, r.get("outside").asDouble(), "nothing outside the rectangle the model saw " + r);
        }
        // sensitivity: the map of one image does not pass for the other image's reference
        double worstControl = 0;
        for (JsonNode r : result) {
            worstControl = Math.max(worstControl, r.get("control").asDouble());
        }
        assertTrue(worstControl < 0.99, "negative control correlates " + worstControl + ": the test cannot tell maps apart");
    }

    private static byte[] parametricMap(WorkingImage im, Finding f, int cls, int i) throws Exception {
        String study = "1.2.826.0.1.3680043.10.1234.77." + cls + "." + i;
        ModelRun run = ModelRun.newBuilder().setModelId("fidelity").setModelVersion("1").setDiagnostic(false)
                .setIntendedUse("test").setEngine("cpu").setFindings(List.of(f)).build();
        ImageResult img = ImageResult.newBuilder().setSopInstanceUid(study + ".1.1").setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1")
                .setSeriesInstanceUid(study + ".1").setImage(im).setRuns(List.of(run)).build();
        StudyResult result = StudyResult.newBuilder().setJobId("pm-" + study).setCreatedAtEpochMs(0)
                .setStudy(StudyInfo.newBuilder().setStudyInstanceUid(study).setPatientId("P").setPatientName("Test^Fidelity").build())
                .setImages(List.of(img)).setInferenceMs(0).setBatchSize(1).build();
        ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(result);
        return set.dicom().stream().filter(o -> o.kind().equals("PM")).findFirst().orElseThrow().part10();
    }
}
