package org.cxrgateway.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.cxrgateway.queue.EmbeddedKafkaBroker;
import org.cxrgateway.testing.FhirTestServer;
import org.cxrgateway.testing.GatewayProcess;
import org.cxrgateway.testing.OrthancPeer;
import org.cxrgateway.testing.Tools;
import org.hl7.fhir.r4.model.DiagnosticReport;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.math.BigInteger;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.function.Predicate;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A study's whole life through the packaged gateway, with Orthanc as the PACS it reports to and the HAPI FHIR
 * test server: scored; a late instance supersedes (new SRs name the old in Predecessor Documents Sequence,
 * dsrdump and dciodvfy clean; one DiagnosticReport per study and model, amended, version 2); a model version
 * change and POST /admin/studies/{uid}/rescore supersede again (version 3); GET shows the life; POST retract
 * withdraws (entered-in-error, retraction SRs in Orthanc, audit line) and a second retract answers 409 and
 * changes nothing.
 */
class StudyLifecycleIT {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String TOKEN = "lifecycle-admin-token";
    private static final List<String> MODELS = List.of("chest14", "covid3");

    private Path work;
    private EmbeddedKafkaBroker broker;
    private OrthancPeer orthanc;
    private FhirTestServer fhir;
    private final HttpClient http = HttpClient.newHttpClient();

    @BeforeEach
    void start() throws Exception {
        Files.createDirectories(Path.of("target", "lifecycle"));
        work = Files.createTempDirectory(Path.of("target", "lifecycle"), "run").toAbsolutePath();
        broker = new EmbeddedKafkaBroker(work.resolve("kafka"), OrthancPeer.freePort(), OrthancPeer.freePort(),
                16 * 1024 * 1024).start();
        orthanc = new OrthancPeer(work, "CXRGATEWAY", OrthancPeer.freePort());
        orthanc.start();
        fhir = new FhirTestServer();
        // a copy of the test models, so that a model's version can change between two runs of the gateway
        for (String m : MODELS) {
            Path from = Path.of("src/test/resources/tiny-models", m);
            Path to = Files.createDirectories(work.resolve("models").resolve(m));
            try (var files = Files.list(from)) {
                for (Path f : files.toList()) {
                    Files.copy(f, to.resolve(f.getFileName()));
                }
            }
        }
    }

    @AfterEach
    void stop() throws Exception {
        if (fhir != null) {
            fhir.close();
        }
        if (orthanc != null) {
            orthanc.close();
        }
        if (broker != null) {
            broker.close();
        }
    }

    private Map<String, String> config() {
        Map<String, String> c = new HashMap<>();
        c.put("cxr.kafka.bootstrap-servers", broker.bootstrapServers());
        c.put("cxr.data-dir", work.resolve("data").toString());
        c.put("cxr.listener.port", Integer.toString(listenerPort));
        c.put("cxr.inference.packages-dir", work.resolve("models").toString());
        c.put("cxr.assembly.quiet-period", "1s");
        c.put("cxr.delivery.pacs.orthanc.host", "127.0.0.1");
        c.put("cxr.delivery.pacs.orthanc.port", Integer.toString(orthanc.dicomPort));
        c.put("cxr.delivery.pacs.orthanc.called-ae", "ORTHANC");
        c.put("cxr.delivery.fhir.base-url", fhir.baseUrl());
        c.put("cxr.report.reject-superseded", "true");
        return c;
    }

    private int listenerPort;

    private GatewayProcess gateway(String log) throws Exception {
        String sha256 = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(TOKEN.getBytes(StandardCharsets.UTF_8)));
        GatewayProcess gw = new GatewayProcess(work.resolve(log), config())
                .env("CXR_HTTP_AUTH_TOKENS_OPS_SHA256", sha256).env("CXR_HTTP_AUTH_TOKENS_OPS_ROLES", "admin").start();
        gw.awaitReady(Duration.ofSeconds(180));
        return gw;
    }

    @Test
    void scoredSupersededRescoredRetracted() throws Exception {
        listenerPort = OrthancPeer.freePort();
        String study = uid();
        String series = uid();
        long t0 = System.nanoTime();
        List<JsonNode> firstSrs;
        List<JsonNode> secondSrs;
        try (GatewayProcess gw = gateway("gateway-1.log")) {
            // 1. scored
            send(study, series, "LIFE-1");
            firstSrs = await("the first SRs", () -> instances(study, "SR"), l -> l.size() == 2);
            await("the first reports", () -> reports(study), l -> l.size() == 2);
            System.out.printf("lifecycle: scored in %d ms%n", (System.nanoTime() - t0) / 1_000_000);
            for (DiagnosticReport r : reports(study)) {
                assertEquals(DiagnosticReport.DiagnosticReportStatus.PRELIMINARY, r.getStatus());
                assertEquals("1", r.getMeta().getVersionId());
            }

            // 2. a late instance: new SRs that supersede, one report per model, amended at version 2
            send(study, series, "LIFE-1");
            List<JsonNode> all = await("the superseding SRs", () -> instances(study, "SR"), l -> l.size() == 4);
            secondSrs = newer(all, firstSrs);
            checkSupersedes(secondSrs, firstSrs);
            List<DiagnosticReport> amended = await("amended reports", () -> reports(study),
                    l -> l.size() == 2 && l.stream().allMatch(r -> "2".equals(r.getMeta().getVersionId())));
            amended.forEach(r -> assertEquals(DiagnosticReport.DiagnosticReportStatus.AMENDED, r.getStatus()));
            assertEquals(2, reports(study).size(), "exactly one DiagnosticReport per study and model");
            await("the rejection note", () -> instances(study, "KO"), l -> l.size() == 1);
        }

        // 3. a new version of chest14, then a re-score by the models now loaded
        Path manifest = work.resolve("models/chest14/manifest.json");
        ObjectNode m = (ObjectNode) JSON.readTree(manifest.toFile());
        m.put("version", "0.2.0-demo");
        JSON.writerWithDefaultPrettyPrinter().writeValue(manifest.toFile(), m);
        try (GatewayProcess gw = gateway("gateway-2.log")) {
            assertEquals(202, post(gw, "/admin/studies/" + study + "/rescore", null, TOKEN).statusCode());
            List<JsonNode> all = await("the re-scored SRs", () -> instances(study, "SR"), l -> l.size() == 6);
            List<JsonNode> thirdSrs = newer(all, concat(firstSrs, secondSrs));
            checkSupersedes(thirdSrs, secondSrs);
            assertTrue(thirdSrs.stream().anyMatch(s -> s.path("SoftwareVersions").toString().contains("0.2.0-demo")),
                    "chest14's new SR is by the new version: " + thirdSrs);
            List<DiagnosticReport> rescored = await("reports amended by the re-score", () -> reports(study),
                    l -> l.size() == 2 && l.stream().allMatch(r -> "3".equals(r.getMeta().getVersionId())));
            rescored.forEach(r -> assertEquals(DiagnosticReport.DiagnosticReportStatus.AMENDED, r.getStatus()));
            assertTrue(rescored.stream().anyMatch(r -> r.getConclusion().contains("0.2.0-demo")));

            // the study's life: three revisions, two superseded, no patient attribute
            HttpResponse<String> life = get(gw, "/admin/studies/" + study, TOKEN);
            assertEquals(200, life.statusCode(), life.body());
            JsonNode l = JSON.readTree(life.body());
            assertEquals("amended", l.path("state").asText());
            assertEquals(3, l.path("revisions").size());
            assertEquals(List.of("superseded", "superseded", "current"), statuses(l));
            assertEquals(2, l.path("received").path("instances").asInt());
            assertFalse(life.body().contains("LIFE-") || life.body().contains("Jane") || life.body().contains("19700101"),
                    "no patient attribute: " + life.body());
            assertEquals(401, get(gw, "/admin/studies/" + study, TOKEN + "x").statusCode());
            assertEquals(400, get(gw, "/admin/studies/not-a-uid", TOKEN).statusCode());
            assertEquals(400, post(gw, "/admin/studies/" + study + "/retract", "{\"reason\":\"\"}", TOKEN).statusCode(),
                    "a retraction needs a reason");
            assertEquals(404, post(gw, "/admin/studies/" + uid() + "/rescore", null, TOKEN).statusCode());
            assertTrue(get(gw, "/q/metrics", TOKEN).body().contains("cxr_admin_studies_refused_total{reason=\"bad_reason\"}"),
                    "refusals are counted");

            // 4. retract: entered-in-error, a retraction SR per model, an audit line; a second retract is 409
            // (counted once the re-score's set is all in: its rejection note is the last object of the set)
            await("the re-score's rejection note", () -> instances(study, "KO"), k -> k.size() == 2);
            int before = instances(study, null).size();
            HttpResponse<String> retracted = post(gw, "/admin/studies/" + study + "/retract",
                    "{\"reason\":\"sent to the gateway by mistake\"}", TOKEN);
            assertEquals(202, retracted.statusCode(), retracted.body());
            List<DiagnosticReport> withdrawn = await("reports entered-in-error", () -> reports(study),
                    r -> r.size() == 2 && r.stream().allMatch(x -> x.getStatus() == DiagnosticReport.DiagnosticReportStatus.ENTEREDINERROR));
            withdrawn.forEach(r -> assertEquals("4", r.getMeta().getVersionId()));
            List<JsonNode> withRetraction = await("the retraction SRs", () -> instances(study, "SR"), x -> x.size() == 8);
            List<JsonNode> retractionSrs = newer(withRetraction, concat(concat(firstSrs, secondSrs), thirdSrs));
            for (JsonNode sr : retractionSrs) {
                Path f = file(sr);
                assertEquals(List.of(), Tools.dciodvfyErrors(f), "dciodvfy retraction SR");
                Tools.Result dump = Tools.run("dsrdump", "+Pl", f.toString());
                assertEquals(0, dump.exit(), dump.out());
                assertTrue(dump.out().contains("RETRACTED") && dump.out().contains("sent to the gateway by mistake"), dump.out());
                assertEquals(3, sr.path("PredecessorDocumentsSequence").get(0).path("ReferencedSeriesSequence").get(0)
                        .path("ReferencedSOPSequence").size(), "every SR of the model is withdrawn");
            }
            await("the retraction's rejection note", () -> instances(study, "KO"), k -> k.size() == 3);
            int after = instances(study, null).size();
            assertEquals(before + 3, after, "two retraction SRs and one rejection note");
            assertTrue(gw.log().contains("RETRACTED study=" + study), "audit line");
            assertFalse(gw.log().contains("sent to the gateway by mistake"), "the operator's free text stays out of the log");

            int updates = fhir.updates.get();
            HttpResponse<String> again = post(gw, "/admin/studies/" + study + "/retract", "{\"reason\":\"again\"}", TOKEN);
            assertEquals(409, again.statusCode(), again.body());
            assertEquals(409, post(gw, "/admin/studies/" + study + "/rescore", null, TOKEN).statusCode());
            Thread.sleep(2000);
            assertEquals(updates, fhir.updates.get(), "the second retract changed nothing in FHIR");
            assertEquals(after, instances(study, null).size(), "nor in the PACS");
            assertEquals("retracted", JSON.readTree(get(gw, "/admin/studies/" + study, TOKEN).body()).path("state").asText());
            assertEquals(404, get(gw, "/admin/studies/" + uid(), TOKEN).statusCode());
        }
        System.out.printf("lifecycle: whole test %d s%n", (System.nanoTime() - t0) / 1_000_000_000);
    }

    private void checkSupersedes(List<JsonNode> newer, List<JsonNode> older) throws Exception {
        assertEquals(2, newer.size(), "one new SR per model");
        Map<String, String> olderBySeries = older.stream().collect(Collectors.toMap(s -> s.path("SeriesInstanceUID").asText(),
                s -> s.path("SOPInstanceUID").asText()));
        for (JsonNode sr : newer) {
            String series = sr.path("SeriesInstanceUID").asText();
            assertTrue(olderBySeries.containsKey(series), "same AI series as the SR it supersedes");
            Set<String> predecessors = new java.util.HashSet<>();
            for (JsonNode s : sr.path("PredecessorDocumentsSequence").get(0).path("ReferencedSeriesSequence")) {
                s.path("ReferencedSOPSequence").forEach(i -> predecessors.add(i.path("ReferencedSOPInstanceUID").asText()));
            }
            assertTrue(predecessors.contains(olderBySeries.get(series)), "names the SR it supersedes: " + predecessors);
            Path f = file(sr);
            assertEquals(List.of(), Tools.dciodvfyErrors(f), "dciodvfy");
            Tools.Result dump = Tools.run("dsrdump", "+Pl", f.toString());
            assertEquals(0, dump.exit(), dump.out());
            assertTrue(dump.out().contains("supersedes"), dump.out());
        }
    }

    private static List<String> statuses(JsonNode life) {
        List<String> out = new ArrayList<>();
        life.path("revisions").forEach(r -> out.add(r.path("status").asText()));
        return out;
    }

    private static List<JsonNode> concat(List<JsonNode> a, List<JsonNode> b) {
        List<JsonNode> out = new ArrayList<>(a);
        out.addAll(b);
        return out;
    }

    private static List<JsonNode> newer(List<JsonNode> all, List<JsonNode> known) {
        Set<String> old = known.stream().map(s -> s.path("SOPInstanceUID").asText()).collect(Collectors.toSet());
        return all.stream().filter(s -> !old.contains(s.path("SOPInstanceUID").asText())).toList();
    }

    /** The study's DiagnosticReports: those whose identifier is one of the study's per-model identifiers. */
    private List<DiagnosticReport> reports(String study) {
        Set<String> ids = MODELS.stream().map(m -> org.cxrgateway.report.FhirBundleBuilder.reportIdentifier(study, m).getValue())
                .collect(Collectors.toSet());
        return fhir.stored.values().stream().filter(r -> r instanceof DiagnosticReport).map(r -> (DiagnosticReport) r)
                .filter(r -> r.getIdentifier().stream().anyMatch(i -> ids.contains(i.getValue()))).toList();
    }

    private void send(String study, String series, String patientId) throws Exception {
        Path f = work.resolve("dx-" + UUID.randomUUID() + ".dcm");
        Tools.Result made = Tools.run("/usr/bin/python3", "src/test/resources/make_source_dx.py", f.toString(),
                study, series, uid(), patientId);
        assertEquals(0, made.exit(), made.out());
        Tools.Result sent = Tools.run("storescu", "-aec", "CXRGATEWAY", "127.0.0.1", Integer.toString(listenerPort), f.toString());
        assertEquals(0, sent.exit(), sent.out());
    }

    /** The study's instances of one modality (all when null) as Orthanc's simplified tags, with "ID". */
    private List<JsonNode> instances(String study, String modality) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode i : JSON.readTree(orthanc.post("/tools/find", """
                {"Level":"Instance","Query":{"StudyInstanceUID":"%s"}}""".formatted(study)))) {
            ObjectNode tags = (ObjectNode) JSON.readTree(orthanc.get("/instances/" + i.asText() + "/simplified-tags"));
            if (modality == null || modality.equals(tags.path("Modality").asText())) {
                tags.put("ID", i.asText());
                out.add(tags);
            }
        }
        return out;
    }

    private Path file(JsonNode instance) throws Exception {
        Path f = work.resolve(instance.path("ID").asText() + ".dcm");
        Files.write(f, orthanc.getBytes("/instances/" + instance.path("ID").asText() + "/file"));
        return f;
    }

    private interface Probe<T> {
        T get() throws Exception;
    }

    private static <T> T await(String what, Probe<T> probe, Predicate<T> done) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(180).toNanos();
        T last = probe.get();
        while (!done.test(last)) {
            assertTrue(System.nanoTime() < deadline, what + " did not come: " + last);
            Thread.sleep(300);
            last = probe.get();
        }
        return last;
    }

    private HttpResponse<String> get(GatewayProcess gw, String path, String token) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(gw.url(path))).header("Authorization", "Bearer " + token)
                .timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
    }

    private HttpResponse<String> post(GatewayProcess gw, String path, String json, String token) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(gw.url(path))).header("Authorization", "Bearer " + token)
                .header("Content-Type", "application/json").timeout(Duration.ofSeconds(30))
                .POST(json == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(json)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    private static String uid() {
        return "2.25." + new BigInteger(UUID.randomUUID().toString().replace("-", ""), 16);
    }
}
