package org.cxrgateway;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.cxrgateway.report.CamMaps;
import org.cxrgateway.report.ReportException;
import org.cxrgateway.schema.v2.ActivationMap;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.StudyResult;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * {@code score --json FILE}: the scores as JSON, for tools (cxr-model validate) that must see exactly
 * what the workers compute. Per image: the file, its UIDs, the working-image size and, per model run
 * and finding, the probability, threshold, result and, where the finding has a Grad-CAM map, the raw map
 * (feature resolution) and its peak (the centre of its brightest feature cell) as a fraction of the working
 * image's width and height.
 * Files not scored are listed with the reason; models at INT8 say how many images their decision guard scored at FP32.
 */
final class ScoreJson {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final ObjectNode root = JSON.createObjectNode();
    private final ArrayNode images = root.putArray("images");
    private final ArrayNode notScored = root.putArray("notScored");

    void notScored(Path file, String reason) {
        notScored.addObject().put("file", file.toString()).put("reason", reason);
    }

    void add(StudyResult result, Map<String, Path> fileBySop) {
        for (ImageResult image : result.getImages()) {
            ObjectNode o = images.addObject();
            Path file = fileBySop.get(image.getSopInstanceUid());
            o.put("file", file == null ? null : file.toString());
            o.put("sopInstanceUid", image.getSopInstanceUid());
            o.put("studyInstanceUid", result.getStudy().getStudyInstanceUid());
            o.put("workingWidth", image.getImage().getWidth());
            o.put("workingHeight", image.getImage().getHeight());
            ArrayNode runs = o.putArray("runs");
            for (ModelRun run : image.getRuns()) {
                ObjectNode r = runs.addObject().put("modelId", run.getModelId()).put("modelVersion", run.getModelVersion())
                        .put("engine", run.getEngine()).put("diagnostic", run.getDiagnostic());
                ArrayNode findings = r.putArray("findings");
                for (Finding f : run.getFindings()) {
                    ObjectNode fo = findings.addObject().put("label", f.getLabel()).put("code", f.getCode().getValue())
                            .put("probability", f.getProbability()).put("threshold", f.getThreshold())
                            .put("positive", f.getPositive());
                    if (f.getActivation() != null) {
                        try {
                            // rendered first: a map the report could not draw is named, not scored
                            CamMaps.render(f.getActivation(), image.getImage().getWidth(), image.getImage().getHeight());
                            double[] peak = peak(f.getActivation(), image.getImage().getWidth(), image.getImage().getHeight());
                            fo.putObject("camPeak").put("x", peak[0]).put("y", peak[1]);
                            // the raw map too (feature resolution, row-major): tools compare two runs' maps with it
                            ObjectNode cam = fo.putObject("cam").put("width", f.getActivation().getWidth())
                                    .put("height", f.getActivation().getHeight());
                            ArrayNode values = cam.putArray("values");
                            f.getActivation().getValues().forEach(values::add);
                        } catch (ReportException e) {
                            fo.put("camError", e.getMessage());
                        }
                    }
                }
            }
        }
    }

    /**
     * The Grad-CAM peak: the centre of the first brightest feature cell, placed through the map's region of
     * the working image, as fractions of its width and height. Not the first brightest pixel of the rendered
     * grid: bilinear upsampling (align_corners=False) holds a border cell's value flat from the cell centre
     * to the image edge, so for a peak in the top row or left column the first maximal pixel is the image's
     * edge, half a cell (16 model-input pixels at DenseNet's stride 32) from the cell the map points at.
     * For an interior cell the rendered grid's brightest pixels surround the cell centre, so both agree there
     * to within the few pixels that round to 255.
     */
    static double[] peak(ActivationMap a, int workingW, int workingH) {
        int fw = Math.max(1, a.getWidth());
        int fh = Math.max(1, a.getHeight());
        float best = Float.NEGATIVE_INFINITY;
        int at = 0;
        for (int i = 0; i < a.getValues().size(); i++) {
            float v = a.getValues().get(i);
            if (v > best) {
                best = v;
                at = i;
            }
        }
        double x = a.getRegionX() + (at % fw + 0.5) * a.getRegionWidth() / fw;
        double y = a.getRegionY() + (at / fw + 0.5) * a.getRegionHeight() / fh;
        return new double[] {x / workingW, y / workingH};
    }

    /**
     * Per model at INT8 with a decision margin (DecisionGuard): the margin and the images scored again at FP32,
     * under "int8DecisionGuard" by model id.
     */
    void decisionGuard(java.util.List<org.cxrgateway.inference.OrtModel> models) {
        ObjectNode guard = root.putObject("int8DecisionGuard");
        for (var m : models) {
            if (m.decisionMargin() > 0) {
                guard.putObject(m.pkg().manifest().id()).put("margin", m.decisionMargin()).put("refereedImages", m.refereedImages());
            }
        }
    }

    void write(Path file) throws IOException {
        JSON.writeValue(file.toFile(), root);
    }
}
