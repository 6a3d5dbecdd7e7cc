package org.cxrgateway.message;

import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.StudyResult;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Keeps a result part within the broker's message limit. A part holds one image: its working image (at most
 * cxr.assembly.max-payload-bytes), the findings with their 7x7 activation maps (a few kB), and the guided
 * Grad-CAM maps (224x224 signed bytes deflated, up to cxr.report.max-secondary-captures per model, typically
 * 20-40 kB each). Should that still not fit, the guided maps of the least probable findings are left out (the
 * SC and the Parametric Map then show the Grad-CAM alone) rather than losing the study to a refused send.
 */
public final class MessageBudget {

    /** Room kept for the Kafka record's own overhead: key, headers, record and batch framing. */
    public static final int RECORD_OVERHEAD = 4096;

    private MessageBudget() {
    }

    /**
     * Drops guided maps, least probable finding first, until the encoded result is at most
     * {@code maxMessageBytes - RECORD_OVERHEAD}. Returns the encoded bytes and how many maps were dropped.
     */
    public static Fitted fit(StudyResult result, int maxMessageBytes) {
        int limit = maxMessageBytes - RECORD_OVERHEAD;
        byte[] encoded = MessageCodec.encode(result);
        if (encoded.length <= limit) {
            return new Fitted(result, encoded, 0);
        }
        List<Finding> guided = new ArrayList<>();
        for (ImageResult image : result.getImages()) {
            for (ModelRun run : image.getRuns()) {
                for (Finding f : run.getFindings()) {
                    if (f.getGuided() != null) {
                        guided.add(f);
                    }
                }
            }
        }
        guided.sort(Comparator.comparingDouble(Finding::getProbability));
        int dropped = 0;
        for (Finding f : guided) {
            f.setGuided(null);
            dropped++;
            encoded = MessageCodec.encode(result);
            if (encoded.length <= limit) {
                break;
            }
        }
        return new Fitted(result, encoded, dropped);
    }

    /** A result and its encoding; {@code droppedGuided} maps were left out to fit (0 normally). */
    public record Fitted(StudyResult result, byte[] encoded, int droppedGuided) {
    }
}
