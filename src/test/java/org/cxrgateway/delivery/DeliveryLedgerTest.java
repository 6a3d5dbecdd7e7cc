package org.cxrgateway.delivery;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The ledger's progress record of a delivery in steps: read back by a new ledger, gone with the ack. */
class DeliveryLedgerTest {

    @TempDir
    Path dir;

    @Test
    void stepsAreReadBackByAFreshLedgerAndForgottenWithTheAck() throws Exception {
        DeliveryLedger.View v = new DeliveryLedger(dir).view("fhir-medplum");
        assertEquals(Map.of(), v.steps("bundle-1"));
        Map<String, String> done = new LinkedHashMap<>();
        done.put("urn:uuid:a", "Patient/p1");
        v.steps("bundle-1", done);
        done.put("urn:uuid:b", "ImagingStudy/s\"1\n"); // any text survives (a server's id is not ours to trust)
        v.steps("bundle-1", done);

        DeliveryLedger.View fresh = new DeliveryLedger(dir).view("fhir-medplum"); // as after a restart
        assertEquals(done, fresh.steps("bundle-1"));
        assertEquals(Map.of(), fresh.steps("bundle-2"), "per object");
        assertEquals(Map.of(), new DeliveryLedger(dir).view("fhir").steps("bundle-1"), "per destination");
        assertFalse(fresh.acked("bundle-1"), "progress is not an acknowledgement");

        fresh.ack("bundle-1");
        assertTrue(fresh.acked("bundle-1"));
        assertEquals(Map.of(), fresh.steps("bundle-1"));
        try (var files = Files.list(dir.resolve("fhir-medplum"))) {
            assertEquals(List.of("bundle-1"), files.map(f -> f.getFileName().toString()).toList(), "only the ack marker is left");
        }
    }

    @Test
    void aDamagedProgressRecordMeansStartingOver() throws Exception {
        DeliveryLedger.View v = new DeliveryLedger(dir).view("fhir");
        v.steps("bundle-1", Map.of("urn:uuid:a", "Patient/p1"));
        Files.writeString(dir.resolve("fhir").resolve("bundle-1.steps"), "{\"urn:uuid:a\":", StandardCharsets.UTF_8);
        assertEquals(Map.of(), v.steps("bundle-1"), "every step is idempotent: redoing them all is safe");
    }
}
