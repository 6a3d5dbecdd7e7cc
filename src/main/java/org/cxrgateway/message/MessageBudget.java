package org.cxrgateway.message;

import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.StudyResult;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;

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

    /**
     * The encoded preview (StudyResult.preview) when its full result is sure to fit whole: the preview plus, for each
     * finding whose guided map follows, the largest encoding a guidedSide x guidedSide map can take. Empty otherwise:
     * a full result that had to drop a promised map would no longer match the SRs sent from its preview, so then
     * no preview is sent and the full result alone carries the study.
     */
    public static Optional<byte[]> previewFits(StudyResult preview, int guidedSide, int maxMessageBytes) {
        long follows = 0;
        for (ImageResult image : preview.getImages()) {
            for (ModelRun run : image.getRuns()) {
                for (Finding f : run.getFindings()) {
                    follows += f.getGuidedFollows() ? 1 : 0;
                }
            }
        }
        byte[] encoded = MessageCodec.encode(preview);
        long worst = encoded.length + follows * guidedMapBound(guidedSide);
        return worst <= maxMessageBytes - RECORD_OVERHEAD ? Optional.of(encoded) : Optional.empty();
    }

    /**
     * The most bytes one GuidedMap of side x side values adds to an encoded Finding: zlib's conservative
     * deflateBound of its values (n + n/8 + n/64 + 11, for any level), and 64 for the union branch, the six int
     * fields, the float and the length prefix.
     */
    static long guidedMapBound(int side) {
        long n = (long) side * side;
        return n + ((n + 7) >> 3) + ((n + 63) >> 6) + 11 + 64;
    }

    /** A result and its encoding; {@code droppedGuided} maps were left out to fit (0 normally). */
    public record Fitted(StudyResult result, byte[] encoded, int droppedGuided) {
    }
}
