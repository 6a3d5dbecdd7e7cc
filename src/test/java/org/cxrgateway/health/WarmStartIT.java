package org.cxrgateway.health;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.cxrgateway.testing.GatewayProcess;
import org.cxrgateway.testing.OrthancPeer;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

/**
 * Readiness goes UP only once the first study would find everything warm: both models loaded, run once on a
 * dummy batch and once through the whole scoring path; the report builders (HAPI's FhirContext among them) used
 * once; the producer connected. The packaged gateway runs as a process with all roles; readiness is read as
 * often as it answers from the moment the process starts, and the log at the first UP must already hold every
 * warm-up.
 */
class WarmStartIT {

    @Test
    void everythingIsWarmBeforeReadinessIsUp() throws Exception {
        Path work = Files.createTempDirectory(Path.of("target"), "warm-start-");
        Map<String, String> c = new HashMap<>();
        c.put("cxr.roles", "all");
        c.put("cxr.data-dir", work.resolve("data").toString());
        c.put("cxr.kafka.embedded.port", "0");
        c.put("cxr.kafka.embedded.controller-port", "0");
        c.put("cxr.listener.port", Integer.toString(OrthancPeer.freePort()));
        ObjectMapper json = new ObjectMapper();
        try (GatewayProcess gw = new GatewayProcess(work.resolve("gateway.log"), c).start()) {
            JsonNode up = null;
            String logAtUp = null;
            long deadline = System.nanoTime() + 180_000_000_000L;
            while (up == null && System.nanoTime() < deadline) {
                String body;
                try {
                    body = gw.get("/q/health/ready");
                } catch (java.io.IOException notListening) {
                    Thread.sleep(50);
                    continue;
                }
                // the log is read after the UP answer: anything in it was logged no later than readiness went UP
                JsonNode r = json.readTree(body);
                if ("UP".equals(r.path("status").asText())) {
                    logAtUp = gw.log();
                    up = r;
                } else {
                    Thread.sleep(50);
                }
            }
            assertNotNull(up, "ready within 180 s: " + gw.tail());
            Map<String, JsonNode> checks = new HashMap<>();
            up.path("checks").forEach(k -> checks.put(k.path("name").asText(), k));
            assertEquals("ready", checks.get("inference-models").path("data").path("state").asText(), up.toString());
            assertEquals("consuming", checks.get("delivery").path("data").path("state").asText(), up.toString());
            assertEquals(2, count(logAtUp, "loaded and warmed up on"), "both demo models loaded and run once: " + logAtUp);
            assertEquals(1, count(logAtUp, "scoring path warmed up in"), "one image through the scoring path: " + logAtUp);
            assertEquals(1, count(logAtUp, "report builders warmed up in"), "FhirContext and reports warm: " + logAtUp);
        }
    }

    private static int count(String text, String what) {
        int n = 0;
        for (int i = text.indexOf(what); i >= 0; i = text.indexOf(what, i + 1)) {
            n++;
        }
        return n;
    }
}
