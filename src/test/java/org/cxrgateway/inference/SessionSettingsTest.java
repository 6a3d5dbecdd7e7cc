package org.cxrgateway.inference;

import ai.onnxruntime.OrtSession;
import org.cxrgateway.testing.ConfigDefaults;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The ONNX Runtime session settings (SessionSettings): the documented defaults are the ones the config gives, the
 * options carry the spinning setting, every session of a model (its guided graph's too) has the model's settings,
 * and no setting changes a number (spinning and the arena are about speed only).
 */
class SessionSettingsTest {

    @Test
    void theConfigDefaultsAreTheDocumentedOnes() throws Exception {
        assertEquals("2", ConfigDefaults.of(InferenceConfig.class, "intraOpThreads"));
        assertEquals("true", ConfigDefaults.of(InferenceConfig.class, "intraOpSpinning"));
        assertEquals("true", ConfigDefaults.of(InferenceConfig.class, "cpuArena"));
        assertEquals(new SessionSettings(2, true, true), SessionSettings.defaults(2));
    }

    @Test
    void optionsCarrySpinning() throws Exception {
        try (OrtSession.SessionOptions on = SessionSettings.defaults(2).options();
             OrtSession.SessionOptions off = new SessionSettings(2, false, false).options()) {
            assertEquals("1", on.getConfigEntries().get(SessionSettings.SPINNING_KEY));
            assertEquals("0", off.getConfigEntries().get(SessionSettings.SPINNING_KEY));
        }
        assertThrows(IllegalArgumentException.class, () -> new SessionSettings(-1, true, true));
    }

    @Test
    void settingsChangeSpeedNotNumbers() {
        Path work = Path.of("target/test-work/session-settings");
        ModelPackage chest = ModelPackage.builtIn("chest14", work);
        float[] input = new float[2 * 3 * 224 * 224];
        java.util.Random r = new java.util.Random(3);
        for (int i = 0; i < input.length; i++) {
            input[i] = (float) r.nextGaussian();
        }
        SessionSettings quiet = new SessionSettings(1, false, false);
        try (OrtModel a = new OrtModel(chest, EngineKind.cpu, SessionSettings.defaults(2), Precision.fp32, null);
             OrtModel b = new OrtModel(chest, EngineKind.cpu, quiet, Precision.fp32, null)) {
            assertEquals(quiet, b.settings());
            OrtModel.Output x = a.run(input, 2), y = b.run(input, 2);
            assertArrayEquals(x.logits(), y.logits(), 1e-4f);
            // and again through the reused input buffer, with a smaller batch after a larger one
            assertArrayEquals(java.util.Arrays.copyOf(x.logits(), a.labels()), a.run(java.util.List.of(java.util.Arrays.copyOf(input, a.inputLength()))).logits(), 1e-5f);
        }
    }
}
