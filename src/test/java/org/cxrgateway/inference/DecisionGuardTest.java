package org.cxrgateway.inference;

import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Which images the INT8 decision guard sends to the FP32 model; Int8FidelityTest has it on real INT8 variants. */
class DecisionGuardTest {

    static ModelManifest manifest(String id) throws Exception {
        return ModelManifest.parse(Files.readAllBytes(Path.of("src/test/resources/tiny-models/" + id + "/manifest.json")), id);
    }

    @Test
    void sigmoidScoresWithinTheMarginOfTheirThresholdInLogOdds() throws Exception {
        ModelManifest m = manifest("chest14"); // 14 sigmoid labels, thresholds 0.5 (log-odds 0), all reported
        int labels = m.labels().size();
        DecisionGuard g = new DecisionGuard(m, 0.5);
        float[] logits = new float[4 * labels];
        java.util.Arrays.fill(logits, -3f);
        logits[labels + 5] = 0.3f;       // image 1: one label 0.3 above its threshold's log-odds
        logits[2 * labels + 13] = -0.7f; // image 2: 0.7 below, outside the margin
        logits[3 * labels] = -0.45f;     // image 3: 0.45 below
        assertArrayEquals(new int[]{1, 3}, g.nearThreshold(logits, 4));
        assertArrayEquals(new int[]{1}, g.nearThreshold(logits, 2), "only the batch's n images are read");
        assertArrayEquals(new int[]{}, new DecisionGuard(m, 0.2).nearThreshold(logits, 4));
        // saturated scores are near no threshold: no NaN from an infinite log-odds
        java.util.Arrays.fill(logits, 0, labels, 80f);
        assertArrayEquals(new int[]{}, new DecisionGuard(m, 0.2).nearThreshold(logits, 1));
    }

    @Test
    void theDistanceIsInLogOddsAtAnyThreshold() throws Exception {
        ModelManifest m = manifest("chest14");
        // the same probability step is a larger log-odds step near 0.98 than near 0.5
        assertEquals(DecisionGuard.logOdds(0.5), 0, 1e-12);
        assertEquals(Math.log(0.98 / 0.02), DecisionGuard.logOdds(0.98), 1e-12);
        assertEquals(Double.NEGATIVE_INFINITY, DecisionGuard.logOdds(0));
        assertEquals(Double.POSITIVE_INFINITY, DecisionGuard.logOdds(1));
        assertTrue(DecisionGuard.logOdds(0.98) - DecisionGuard.logOdds(0.96) > 0.5, "0.96 is more than 0.5 log-odds from 0.98");
        assertTrue(DecisionGuard.logOdds(0.55) - DecisionGuard.logOdds(0.5) < 0.5, "0.55 is within 0.5 log-odds of 0.5");
    }

    @Test
    void softmaxReadsOnlyTheReportedLabels() throws Exception {
        ModelManifest m = manifest("covid3"); // softmax over Normal, Pneumonia, COVID-19; COVID-19 alone reported
        DecisionGuard g = new DecisionGuard(m, 0.5);
        // image 0: Normal and Pneumonia at 0.49 each (near 0.5, but not reported), COVID-19 0.02: not near
        // image 1: COVID-19 at 0.55 (log-odds 0.20 from the threshold's)
        float[] logits = {
                0, 0, (float) Math.log(0.02 / 0.49),
                0, (float) Math.log(0.05 / 0.40), (float) Math.log(0.55 / 0.40)};
        double[] p1 = Scorer.probabilities(m, logits, 1);
        assertEquals(0.55, p1[2], 1e-6);
        assertArrayEquals(new int[]{1}, g.nearThreshold(logits, 2));
    }

    @Test
    void theMarginIsPositiveAndBounded() throws Exception {
        ModelManifest m = manifest("chest14");
        for (double bad : new double[]{0, -0.1, 10.5, Double.NaN, Double.POSITIVE_INFINITY}) {
            assertThrows(IllegalArgumentException.class, () -> new DecisionGuard(m, bad), "margin " + bad);
        }
    }

    /** chest14's manifest with an int8 section, its decisionMargin the given value where not null. */
    static ModelManifest withInt8(Double decisionMargin) throws Exception {
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        var node = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(
                Files.readAllBytes(Path.of("src/test/resources/tiny-models/chest14/manifest.json")));
        var int8 = node.putObject("int8").put("file", "model.int8.onnx").put("scheme", "qdq-u8s8");
        if (decisionMargin != null) {
            int8.put("decisionMargin", decisionMargin);
            int8.putObject("decisionMarginBasis").put("subset", "validation").put("images", 111);
        }
        return ModelManifest.parse(json.writeValueAsBytes(node), "chest14");
    }

    @Test
    void theMarginInForceIsTheOperatorsElseThePackagesMeasuredOneElseTheDefault() throws Exception {
        ModelManifest measured = withInt8(0.41), unmeasured = withInt8(null);
        assertEquals(0.41, measured.int8().decisionMargin());
        assertEquals(new DecisionGuard.Margin(0.41, "measured for this variant, manifest int8.decisionMargin"),
                DecisionGuard.margin(java.util.Optional.empty(), measured));
        assertEquals(0.5, DecisionGuard.margin(java.util.Optional.empty(), unmeasured).logOdds());
        assertEquals(0.5, DecisionGuard.margin(java.util.Optional.empty(), manifest("chest14")).logOdds(), "no INT8 variant");
        // set, the operator's margin applies to every package, 0 (off) included
        assertEquals(new DecisionGuard.Margin(0.8, "cxr.inference.int8-decision-margin"), DecisionGuard.margin(java.util.Optional.of(0.8), measured));
        assertEquals(0, DecisionGuard.margin(java.util.Optional.of(0.0), measured).logOdds());
        // a measured margin is a guard's margin: positive, at most MAX_MARGIN (the manifest's schema)
        for (double bad : new double[]{0, -0.2, 10.5}) {
            var e = assertThrows(ModelPackageException.class, () -> withInt8(bad), "decisionMargin " + bad);
            assertTrue(e.getMessage().contains("decisionMargin"), e.getMessage());
        }
    }
}
