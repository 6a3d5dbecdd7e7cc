package org.cxrgateway;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.cxrgateway.report.CamMaps;
import org.cxrgateway.report.ReportException;
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
 * and finding, the probability, threshold, result and, where the finding has a Grad-CAM map, its
 * peak as a fraction of the image width and height (pixel centres). Files not scored are listed with
 * the reason.
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
                            // the peak of the heatmap grid the report renders, as cxr-model validate compares it
                            double[] peak = peak(CamMaps.render(f.getActivation(), image.getImage().getWidth(),
                                    image.getImage().getHeight()));
                            fo.putObject("camPeak").put("x", peak[0]).put("y", peak[1]);
                        } catch (ReportException e) {
                            fo.put("camError", e.getMessage());
                        }
                    }
                }
            }
        }
    }

    /** Centre of the first brightest cell, as fractions of width and height. */
    static double[] peak(CamMaps.Grid map) {
        byte[] b = map.values();
        int best = -1;
        int at = 0;
        for (int i = 0; i < b.length; i++) {
            int v = b[i] & 0xff;
            if (v > best) {
                best = v;
                at = i;
            }
        }
        int w = Math.max(1, map.width());
        int h = Math.max(1, map.height());
        return new double[] {(at % w + 0.5) / w, (at / w + 0.5) / h};
    }

    void write(Path file) throws IOException {
        JSON.writeValue(file.toFile(), root);
    }
}
