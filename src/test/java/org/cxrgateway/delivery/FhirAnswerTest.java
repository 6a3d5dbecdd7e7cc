package org.cxrgateway.delivery;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * FHIR answers are read as they stream in (FhirAnswer), from a hostile HTTP peer on loopback: a CapabilityStatement
 * of megabytes and a transaction response that ignores Prefer: return=minimal are read for the few values used;
 * an answer past 8 MiB is cut there and dead-lettered with its reason; one that trickles is ended at the timeout.
 * Each bad answer is counted by reason.
 */
class FhirAnswerTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String PAD = "x".repeat(64 * 1024);
    private HttpServer server;
    private final SimpleMeterRegistry metrics = new SimpleMeterRegistry();
    /** path -> what the peer answers there */
    private final Map<String, Handler> routes = new ConcurrentHashMap<>();
    private final Map<String, String> received = new ConcurrentHashMap<>();

    interface Handler {
        void answer(HttpExchange x, String body) throws IOException, InterruptedException;
    }

    /** A fresh ledger: each ordered write here starts at its first step. */
    static DeliveryLedger.View ledger() throws IOException {
        java.nio.file.Files.createDirectories(java.nio.file.Path.of("target"));
        return new DeliveryLedger(java.nio.file.Files.createTempDirectory(java.nio.file.Path.of("target"), "fhir-answer")).view("fhir");
    }

    FhirDestination destination(Duration timeout, FhirWriteMode mode) throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.setExecutor(Executors.newCachedThreadPool());
        server.createContext("/", x -> {
            String body = new String(x.getRequestBody().readAllBytes(), StandardCharsets.UTF_8);
            String key = x.getRequestMethod() + " " + x.getRequestURI().getPath();
            received.put(key, body);
            try (x) {
                Handler h = routes.get(key);
                if (h == null) {
                    x.sendResponseHeaders(404, -1);
                } else {
                    h.answer(x, body);
                }
            } catch (InterruptedException | IOException e) {
                // the client went away: what the hostile peer wanted
            }
        });
        server.start();
        return new FhirDestination("fhir", "http://127.0.0.1:" + server.getAddress().getPort() + "/fhir", Optional.empty(),
                Optional.empty(), Optional.empty(), timeout, mode, 8, metrics);
    }

    @AfterEach
    void stop() {
        if (server != null) {
            server.stop(0);
        }
    }

    static void send(HttpExchange x, int status, String body) throws IOException {
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        x.getResponseHeaders().add("Content-Type", "application/fhir+json");
        x.sendResponseHeaders(status, b.length);
        x.getResponseBody().write(b);
    }

    /** A CapabilityStatement of 4 MiB whose rest lists its interactions after all of its resources. */
    static String capability(String interaction) {
        StringBuilder resources = new StringBuilder();
        for (int i = 0; i < 64; i++) {
            resources.append(i == 0 ? "" : ",").append("{\"type\":\"Basic\",\"documentation\":\"").append(PAD).append("\"}");
        }
        return "{\"resourceType\":\"CapabilityStatement\",\"status\":\"active\",\"rest\":[{\"mode\":\"server\",\"resource\":["
                + resources + "],\"interaction\":[{\"code\":\"batch\"},{\"code\":\"" + interaction + "\"}]}]}";
    }

    @Test
    void aCapabilityStatementOfMegabytesIsReadForItsInteractions() throws Exception {
        FhirDestination d = destination(Duration.ofSeconds(20), FhirWriteMode.AUTO);
        routes.put("GET /fhir/metadata", (x, body) -> send(x, 200, capability("transaction")));
        assertTrue(d.statesTransactions());
        routes.put("GET /fhir/metadata", (x, body) -> send(x, 200, capability("history-system")));
        assertFalse(d.statesTransactions(), "no transaction interaction listed");
    }

    /**
     * The peer answers every write with the whole resource and 64 KiB more (it ignores return=minimal): the ordered
     * write still takes each entry's location or id, and the DiagnosticReport references the ids the peer assigned.
     */
    @Test
    void aTransactionResponseCarryingEveryResourceIsReadForItsLocations() throws Exception {
        FhirDestination d = destination(Duration.ofSeconds(20), FhirWriteMode.ORDERED);
        AtomicInteger ids = new AtomicInteger();
        for (String type : List.of("Patient", "Device", "ImagingStudy")) {
            routes.put("POST /fhir/" + type, (x, body) -> {
                ObjectNode r = (ObjectNode) JSON.readTree(body);
                r.put("id", type.toLowerCase() + ids.incrementAndGet()).put("text", PAD);
                send(x, 201, r.toString()); // no Location header: the id comes from the body
            });
        }
        routes.put("POST /fhir", (x, body) -> {
            ObjectNode out = JSON.createObjectNode().put("resourceType", "Bundle").put("type", "transaction-response");
            ArrayNode entries = out.putArray("entry");
            for (JsonNode e : JSON.readTree(body).path("entry")) {
                String type = e.path("resource").path("resourceType").asText();
                ObjectNode entry = entries.addObject();
                entry.set("resource", ((ObjectNode) e.path("resource").deepCopy()).put("padding", PAD));
                entry.putObject("response").put("status", "201 Created")
                        .put("location", type + "/" + type.toLowerCase() + ids.incrementAndGet() + "/_history/1");
            }
            send(x, 200, out.toString());
        });
        routes.put("PUT /fhir/Observation", (x, body) -> {
            ObjectNode r = (ObjectNode) JSON.readTree(body);
            r.put("id", "observation" + ids.incrementAndGet()).put("text", PAD);
            send(x, 200, r.toString()); // the whole resource back, no Location
        });
        routes.put("PUT /fhir/DiagnosticReport", (x, body) -> send(x, 200, "{\"resourceType\":\"DiagnosticReport\",\"id\":\"r1\"}"));
        d.writeOrdered(new ReportBuilder(ReportSettings.defaults()).build(TestResults.study("61").build()).fhirBundleJson(), ledger(), "bundle");
        JsonNode report = JSON.readTree(received.get("PUT /fhir/DiagnosticReport"));
        assertTrue(report.path("subject").path("reference").asText().matches("Patient/patient\\d+"), report.path("subject").toString());
        assertEquals(4, report.path("result").size());
        for (JsonNode r : report.path("result")) {
            assertTrue(r.path("reference").asText().matches("Observation/observation\\d+"), r.toString());
        }
        for (JsonNode m : report.path("media")) {
            assertTrue(m.path("link").path("reference").asText().matches("Media/media\\d+"), m.toString());
        }
    }

    @Test
    void anAnswerPastEightMebibytesIsCutThereAndNotRetried() throws Exception {
        FhirDestination d = destination(Duration.ofSeconds(30), FhirWriteMode.ORDERED);
        routes.put("POST /fhir/Patient", (x, body) -> {
            x.sendResponseHeaders(201, 0); // chunked, no end announced
            OutputStream out = x.getResponseBody();
            out.write("{\"resourceType\":\"Patient\",\"text\":\"".getBytes(StandardCharsets.UTF_8));
            byte[] chunk = PAD.getBytes(StandardCharsets.UTF_8);
            for (int i = 0; i < 1024; i++) { // 64 MiB if nobody stops it
                out.write(chunk);
            }
        });
        long t0 = System.nanoTime();
        DeliveryException e = assertThrows(DeliveryException.class, () -> d.writeOrdered(
                new ReportBuilder(ReportSettings.defaults()).build(TestResults.study("62").build()).fhirBundleJson(), ledger(), "bundle"));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertFalse(e.retryable(), e.getMessage());
        assertTrue(e.getMessage().contains("more than 8388608 bytes"), e.getMessage());
        assertEquals(1.0, metrics.get("cxr.delivery.fhir.bad.answers").tag("reason", "too-large").counter().count());
        System.out.printf("answer past 8 MiB refused after %d ms%n", ms);
    }

    @Test
    void anAnswerThatTricklesIsEndedAtTheTimeout() throws Exception {
        FhirDestination d = destination(Duration.ofSeconds(2), FhirWriteMode.ORDERED);
        routes.put("POST /fhir/Patient", (x, body) -> {
            x.sendResponseHeaders(201, 0);
            OutputStream out = x.getResponseBody();
            out.write("{\"resourceType\":\"Patient\",\"id\":\"".getBytes(StandardCharsets.UTF_8));
            for (int i = 0; i < 600; i++) { // a byte every 100 ms: headers on time, the body never ends
                out.write('a');
                out.flush();
                Thread.sleep(100);
            }
        });
        String bundle = new ReportBuilder(ReportSettings.defaults()).build(TestResults.study("63").build()).fhirBundleJson();
        DeliveryLedger.View ledger = ledger();
        long t0 = System.nanoTime(); // the write alone: a cold report builder can take seconds on a loaded machine
        DeliveryException e = assertThrows(DeliveryException.class, () -> d.writeOrdered(bundle, ledger, "bundle"));
        long ms = (System.nanoTime() - t0) / 1_000_000;
        assertTrue(e.retryable(), e.getMessage());
        assertTrue(e.getMessage().contains("did not answer POST within PT2S"), e.getMessage());
        assertTrue(ms >= 1900 && ms < 10_000, "ended after " + ms + " ms");
        assertEquals(1.0, metrics.get("cxr.delivery.fhir.bad.answers").tag("reason", "timeout").counter().count());
    }
}
