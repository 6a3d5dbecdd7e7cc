package org.cxrgateway.inference;

import java.util.Arrays;

/**
 * Keeps the INT8 variant's decisions those of the FP32 model it was made from. Quantisation moves every score a
 * little (probabilities by at most 0.013-0.049 on trained DenseNet-121s at quantize.py's defaults, README, INT8
 * variant), which flips the decision of any score that sits that close to its operating threshold. So an image whose
 * INT8 score for some reported label lies within the margin of that label's threshold is scored again at FP32
 * (OrtModel), and its FP32 outputs are used.
 * <p>
 * Why that suffices: where the INT8 error on an image is below the margin, a label the INT8 model puts at least the
 * margin away from its threshold is on the same side of it at FP32, and every other label was scored at FP32. The
 * cost is one FP32 image per image near a threshold.
 * <p>
 * The distance is in log-odds, log(p / (1 - p)) (for a sigmoid head the logit itself), not in probability:
 * quantisation moves the logits (the features through the linear head), and a logit error moves a probability by
 * p (1 - p) times as much, so a probability margin is wide in log-odds near a high or low threshold and narrow near
 * 0.5. On a trained DenseNet-121 with thresholds 0.64-0.98 (int8-auroc.sh, 2026-12-07) the INT8
 * log-odds error of scores within 2 of a threshold's was at most 0.21 / 0.37 (validation / test): a log-odds margin
 * of 0.4 left no flip and scored 13-14% of the images again, where a probability margin needed 0.02-0.05 and 19-32%.
 */
final class DecisionGuard {

    /** InferenceConfig's default margin, in log-odds: above the INT8 error near thresholds measured (class comment). */
    static final String DEFAULT_MARGIN = "0.5";

    private final ModelManifest manifest;
    private final int[] reported;
    private final double[] thresholdLogOdds;
    private final double margin;

    DecisionGuard(ModelManifest manifest, double margin) {
        if (!(margin > 0 && margin <= MAX_MARGIN)) {
            throw new IllegalArgumentException("the INT8 decision margin must be in (0, " + MAX_MARGIN + "] (log-odds), not " + margin);
        }
        this.manifest = manifest;
        this.reported = manifest.reportedIndices();
        this.thresholdLogOdds = manifest.labels().stream().mapToDouble(l -> logOdds(l.threshold())).toArray();
        this.margin = margin;
    }

    /** Beyond this every score is near every threshold: log-odds 10 is p 0.99995 against 0.5. */
    static final double MAX_MARGIN = 10;

    /** A decision margin in log-odds, and where it comes from (for the model's load line). */
    record Margin(double logOdds, String source) {
    }

    /**
     * The margin in force for a package at INT8: cxr.inference.int8-decision-margin where set (the operator's word,
     * for every package), else the margin measured for the package's own variant (manifest int8.decisionMargin, from
     * cxr-model validate --write-margin), else {@value #DEFAULT_MARGIN}. A variant's error is its own: one that
     * quantises worse than the one behind the default needs a wider margin, a better one a narrower.
     */
    static Margin margin(java.util.Optional<Double> configured, ModelManifest manifest) {
        if (configured.isPresent()) {
            return new Margin(configured.get(), "cxr.inference.int8-decision-margin");
        }
        ModelManifest.Int8 int8 = manifest.int8();
        if (int8 != null && int8.decisionMargin() != null) {
            return new Margin(int8.decisionMargin(), "measured for this variant, manifest int8.decisionMargin");
        }
        return new Margin(Double.parseDouble(DEFAULT_MARGIN), "the default");
    }

    double margin() {
        return margin;
    }

    /** log(p / (1 - p)): infinite at 0 and 1, so a score or threshold there is never near a finite one. */
    static double logOdds(double p) {
        return Math.log(p) - Math.log1p(-p);
    }

    /** The images of a batch of logits [n, labels] with a reported score within the margin of its threshold. */
    int[] nearThreshold(float[] logits, int n) {
        int[] near = new int[n];
        int k = 0;
        for (int i = 0; i < n; i++) {
            double[] p = Scorer.probabilities(manifest, logits, i);
            for (int c : reported) {
                if (Math.abs(logOdds(p[c]) - thresholdLogOdds[c]) < margin) {
                    near[k++] = i;
                    break;
                }
            }
        }
        return Arrays.copyOf(near, k);
    }
}
