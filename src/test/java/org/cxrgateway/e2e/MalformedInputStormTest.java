package org.cxrgateway.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import org.cxrgateway.testing.RawStoreScu;
import org.cxrgateway.testing.Tools;
import org.eclipse.microprofile.config.ConfigProvider;
import org.hl7.fhir.r4.model.DiagnosticReport;
import org.junit.jupiter.api.Test;

import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A storm of malformed input mixed with good studies, sent concurrently straight to the gateway's
 * listener: every good study is reported exactly once (two SRs in the PACS by SOP Instance UID, two
 * DiagnosticReports in FHIR), every bad input gets its failure status or reject and is counted by
 * reason, nothing of a bad input reaches the PACS or FHIR, and the gateway stays ready.
 */
@QuarkusTest
@WithTestResource(EndToEndPeers.class)
class MalformedInputStormTest {

    private static final int GOOD = 4;
    private static final int SENDERS = 4;
    private static final ObjectMapper JSON = new ObjectMapper();

    private int port;
    private String ae;
    private Path dir;
    private JsonNode made;

    @Test
    void goodStudiesAreReportedExactlyOnceWhileMalformedInputIsRejectedAndCounted() throws Exception {
        port = ConfigProvider.getConfig().getValue("cxr.listener.port", Integer.class);
        ae = ConfigProvider.getConfig().getOptionalValue("cxr.listener.ae-title", String.class).orElse("CXRGATEWAY");
        dir = Files.createTempDirectory(EndToEndPeers.work, "storm");
        Tools.Result fixtures = Tools.run("/usr/bin/python3", "src/test/python/storm_fixtures.py", dir.toString(),
                Integer.toString(GOOD));
        assertEquals(0, fixtures.exit(), fixtures.out());
        made = JSON.readTree(fixtures.out());
        Tools.Result jls = Tools.run("dcmcjpls", dir.resolve("for_jls.dcm").toString(), dir.resolve("jls.dcm").toString());
        assertEquals(0, jls.exit(), jls.out());

        Map<String, Double> before = metrics();
        long reportsBefore = EndToEndPeers.fhir.count("DiagnosticReport");

        // Every sender in a task of its own, shuffled, so good and bad associations overlap.
        Map<String, Callable<Object>> tasks = new LinkedHashMap<>();
        for (int i = 0; i < GOOD; i++) {
            List<String> files = new ArrayList<>();
            if (i < 2) {
                files.add(file("good_" + i + "_lateral.dcm"));
            }
            files.add(file("good_" + i + ".dcm"));
            tasks.put("good_" + i, () -> storescu("-aet", "MODALITY", files.toArray(String[]::new)));
        }
        tasks.put("lateral_only", () -> storescu("-aet", "MODALITY", file("lateral_only.dcm")));
        tasks.put("no_pixels", () -> storescu("-aet", "MODALITY", file("no_pixels.dcm")));
        tasks.put("ct", () -> storescu("-aet", "MODALITY", file("ct.dcm")));
        // JPEG-LS only: nothing the listener accepts, and storescu may not transcode
        tasks.put("jls", () -> storescu("-aet", "MODALITY", "-xt", "-R", file("jls.dcm")));
        for (int n = 0; n < 2; n++) {
            tasks.put("garbage_" + n, () -> raw("garbage"));
            tasks.put("truncated_" + n, () -> raw("truncated"));
            tasks.put("wrong_called_ae_" + n, () -> Tools.run("storescu", "-aet", "MODALITY", "-aec", "NOTTHEGATEWAY",
                    "127.0.0.1", Integer.toString(port), file("good_2.dcm")));
            tasks.put("not_dicom_" + n, this::notDicom);
        }
        List<String> order = new ArrayList<>(tasks.keySet());
        Collections.shuffle(order, new Random(20260101));
        ExecutorService pool = Executors.newFixedThreadPool(SENDERS);
        Map<String, Future<Object>> outcomes = new HashMap<>();
        long t0 = System.nanoTime();
        try {
            for (String name : order) {
                outcomes.put(name, pool.submit(tasks.get(name)));
            }
        } finally {
            pool.shutdown();
        }
        assertTrue(pool.awaitTermination(150, TimeUnit.SECONDS), "senders did not finish");
        System.out.printf("storm: %d associations from %d senders in %d ms%n", order.size(), SENDERS,
                (System.nanoTime() - t0) / 1_000_000);

        // What each sender was told.
        for (int i = 0; i < GOOD; i++) {
            Tools.Result r = (Tools.Result) outcomes.get("good_" + i).get();
            assertEquals(0, r.exit(), r.out());
            assertEquals(i < 2 ? 2 : 1, successes(r), "every instance of a good study is accepted: " + r.out());
        }
        for (String accepted : List.of("lateral_only", "no_pixels")) {
            Tools.Result r = (Tools.Result) outcomes.get(accepted).get();
            // accepted as DICOM; it is the study assembly that finds nothing to score
            assertEquals(1, successes(r), accepted + ": " + r.out());
        }
        Tools.Result ct = (Tools.Result) outcomes.get("ct").get();
        assertEquals(0, successes(ct), ct.out());
        assertTrue(ct.out().contains("No presentation context"), ct.out());
        Tools.Result jlsSent = (Tools.Result) outcomes.get("jls").get();
        assertEquals(0, successes(jlsSent), jlsSent.out());
        for (int n = 0; n < 2; n++) {
            int garbage = (Integer) outcomes.get("garbage_" + n).get();
            assertEquals(0xC000, garbage & 0xF000, "garbage: Cxxx failure, got " + Integer.toHexString(garbage));
            int truncated = (Integer) outcomes.get("truncated_" + n).get();
            assertEquals(0xC000, truncated & 0xF000, "truncated: Cxxx failure, got " + Integer.toHexString(truncated));
            Tools.Result wrongAe = (Tools.Result) outcomes.get("wrong_called_ae_" + n).get();
            assertNotEquals(0, wrongAe.exit(), wrongAe.out());
            assertTrue(wrongAe.out().contains("Called AE Title Not Recognized"), wrongAe.out());
            assertEquals(-1, (Integer) outcomes.get("not_dicom_" + n).get(), "a non-DICOM connection is dropped");
        }

        // Every good study: exactly its two SRs in the PACS, each with its DiagnosticReport.
        Map<String, List<PeerQueries.PacsInstance>> pacs = new LinkedHashMap<>();
        long deadline = System.nanoTime() + 150_000_000_000L;
        for (int i = 0; i < GOOD; i++) {
            String study = uid("good_" + i, "study");
            List<PeerQueries.PacsInstance> instances;
            while (true) {
                instances = PeerQueries.instancesOf(study);
                List<String> srs = PeerQueries.ofModality(instances, "SR").stream().map(PeerQueries.PacsInstance::sopInstanceUid).toList();
                Map<String, DiagnosticReport> reports = PeerQueries.reportsFor(srs);
                if ((srs.size() >= 2 && reports.size() >= 2 && PeerQueries.explanationsArrived(instances, reports.values()))
                        || System.nanoTime() > deadline) {
                    break;
                }
                Thread.sleep(250);
            }
            pacs.put(study, instances);
        }
        System.out.printf("storm: all good studies reported %d ms after the first sender started%n",
                (System.nanoTime() - t0) / 1_000_000);
        // Late duplicates, if any, would come within a delivery retry or two.
        Thread.sleep(3000);
        for (int i = 0; i < GOOD; i++) {
            String study = uid("good_" + i, "study");
            List<PeerQueries.PacsInstance> instances = PeerQueries.instancesOf(study);
            assertEquals(pacs.get(study).size(), instances.size(), "nothing more arrived later for good_" + i);
            Set<String> sops = new HashSet<>();
            for (PeerQueries.PacsInstance in : instances) {
                assertTrue(sops.add(in.sopInstanceUid()), "duplicate SOP Instance UID in the PACS: " + in);
            }
            List<String> srs = PeerQueries.ofModality(instances, "SR").stream().map(PeerQueries.PacsInstance::sopInstanceUid).toList();
            assertEquals(2, srs.size(), "good_" + i + ": one SR per model (chest14, covid3): " + instances);
            Map<String, DiagnosticReport> reports = PeerQueries.reportsFor(srs);
            assertEquals(2, reports.size(), "good_" + i + ": a DiagnosticReport per SR");
            assertEquals(PeerQueries.mediaOf(reports.values()),
                    PeerQueries.ofSopClass(instances, PeerQueries.SECONDARY_CAPTURE).size(),
                    "good_" + i + ": one SC in the PACS per heatmap Media");
            assertEquals(PeerQueries.gradCamMediaOf(reports.values()),
                    PeerQueries.ofSopClass(instances, PeerQueries.PARAMETRIC_MAP).size(),
                    "good_" + i + ": one Parametric Map per Grad-CAM overlay");
            assertEquals(List.of(), PeerQueries.ofModality(instances, "DX"), "sent to the gateway, not the PACS");
            assertTrue(PeerQueries.hasImagingStudy(study));
        }
        assertEquals(2L * GOOD, EndToEndPeers.fhir.count("DiagnosticReport") - reportsBefore,
                "exactly two DiagnosticReports per good study, none for anything else");
        for (String bad : List.of("lateral_only", "no_pixels", "ct", "for_jls", "truncated", "garbage")) {
            String study = uid(bad, "study");
            assertEquals(List.of(), PeerQueries.instancesOf(study), bad + " produced something in the PACS");
            assertTrue(!PeerQueries.hasImagingStudy(study), bad + " produced something in FHIR");
        }

        // The metrics tell the same story, by reason.
        Map<String, Double> after = awaitMetric(before, "cxr_ingest_studies_without_eligible_total", Map.of(), 2);
        assertEquals(8, delta(before, after, "cxr_ingest_instances_received_total", Map.of()),
                "4 good + 2 companion laterals + lateral-only + no-pixel-data stored");
        assertEquals(GOOD, delta(before, after, "cxr_ingest_studies_published_total", Map.of("update", "false")));
        assertEquals(0, delta(before, after, "cxr_ingest_studies_published_total", Map.of("update", "true")));
        assertEquals(3, delta(before, after, "cxr_ingest_instances_ineligible_total", Map.of("reason", "LATERAL_VIEW")));
        assertEquals(1, delta(before, after, "cxr_ingest_instances_ineligible_total", Map.of("reason", "NO_PIXEL_DATA")));
        assertEquals(4, delta(before, after, "cxr_ingest_instances_rejected_total", Map.of()),
                "garbage and truncated data sets, twice each");
        assertEquals(0, delta(before, after, "cxr_ingest_instances_rejected_total", Map.of("status", "0000")));
        assertTrue(delta(before, after, "cxr_dicom_presentation_contexts_rejected_total",
                Map.of("reason", "ABSTRACT_SYNTAX_NOT_SUPPORTED")) >= 1, "CT");
        assertTrue(delta(before, after, "cxr_dicom_presentation_contexts_rejected_total",
                Map.of("reason", "TRANSFER_SYNTAX_NOT_SUPPORTED")) >= 1, "JPEG-LS");
        assertEquals(2, delta(before, after, "cxr_dicom_associations_total",
                Map.of("result", "rejected", "reason", "CALLED_AE_NOT_RECOGNIZED")));
        assertEquals(2, delta(before, after, "cxr_dicom_associations_total",
                Map.of("result", "rejected", "reason", "MALFORMED")));
        assertEquals(0, delta(before, after, "cxr_dead_letters_total", Map.of()), "nothing was poison downstream");
        assertEquals(0, delta(before, after, "cxr_inference_poison_total", Map.of()));

        // And the gateway is still up and still takes associations.
        given().when().get("/q/health/ready").then().statusCode(200);
        Tools.Result echo = Tools.run("echoscu", "-aec", ae, "127.0.0.1", Integer.toString(port));
        assertEquals(0, echo.exit(), echo.out());
    }

    private String file(String name) {
        return dir.resolve(name).toString();
    }

    private String uid(String name, String which) {
        return made.get(name).get(which).asText();
    }

    private Tools.Result storescu(String aetFlag, String aet, String... rest) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("storescu", "-v", aetFlag, aet, "-aec", ae));
        List<String> options = new ArrayList<>();
        List<String> files = new ArrayList<>();
        for (String a : rest) {
            (a.startsWith("-") ? options : files).add(a);
        }
        cmd.addAll(options);
        cmd.add("127.0.0.1");
        cmd.add(Integer.toString(port));
        cmd.addAll(files);
        return Tools.run(cmd.toArray(String[]::new));
    }

    private Integer raw(String name) throws Exception {
        byte[] dataSet = Files.readAllBytes(dir.resolve(name + ".raw"));
        return RawStoreScu.store(port, "RAWSCU", ae, uid(name, "sop_class"), uid(name, "sop"), dataSet);
    }

    /** An HTTP request to the DICOM port: the listener must drop it. @return what the first read gave. */
    private Integer notDicom() throws Exception {
        try (Socket s = new Socket("127.0.0.1", port)) {
            s.setSoTimeout(20_000);
            s.getOutputStream().write("GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            return s.getInputStream().read();
        }
    }

    private static long successes(Tools.Result r) {
        return r.out().lines().filter(l -> l.contains("Received Store Response (Success)")).count();
    }

    private static final Pattern SAMPLE = Pattern.compile("^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{(.*)})?\\s+(\\S+)$");
    private static final Pattern LABEL = Pattern.compile("([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\\]|\\\\.)*)\"");

    /** Prometheus samples, keyed by name and labels ("name|k=v|k=v", labels sorted). */
    private static Map<String, Double> metrics() {
        String text = given().when().get("/q/metrics").then().statusCode(200).extract().asString();
        Map<String, Double> out = new HashMap<>();
        for (String line : text.split("\n")) {
            Matcher m = SAMPLE.matcher(line.trim());
            if (line.startsWith("#") || !m.matches()) {
                continue;
            }
            List<String> labels = new ArrayList<>();
            if (m.group(3) != null) {
                Matcher l = LABEL.matcher(m.group(3));
                while (l.find()) {
                    labels.add(l.group(1) + "=" + l.group(2));
                }
            }
            Collections.sort(labels);
            StringBuilder key = new StringBuilder(m.group(1));
            labels.forEach(l -> key.append('|').append(l));
            out.put(key.toString(), Double.parseDouble(m.group(4)));
        }
        return out;
    }

    /** Sum over every series of the metric whose labels include these. */
    private static double sum(Map<String, Double> samples, String name, Map<String, String> labels) {
        double total = 0;
        for (Map.Entry<String, Double> e : samples.entrySet()) {
            String[] parts = e.getKey().split("\\|");
            if (!parts[0].equals(name)) {
                continue;
            }
            Set<String> have = new HashSet<>(List.of(parts).subList(1, parts.length));
            if (labels.entrySet().stream().allMatch(l -> have.contains(l.getKey() + "=" + l.getValue()))) {
                total += e.getValue();
            }
        }
        return total;
    }

    private static long delta(Map<String, Double> before, Map<String, Double> after, String name, Map<String, String> labels) {
        return Math.round(sum(after, name, labels) - sum(before, name, labels));
    }

    /** The assembly counts after its quiet period; wait for it rather than guess how long that takes. */
    private static Map<String, Double> awaitMetric(Map<String, Double> before, String name, Map<String, String> labels,
                                                   long expected) throws InterruptedException {
        long deadline = System.nanoTime() + 30_000_000_000L;
        Map<String, Double> now = metrics();
        while (delta(before, now, name, labels) < expected && System.nanoTime() < deadline) {
            Thread.sleep(250);
            now = metrics();
        }
        assertEquals(expected, delta(before, now, name, labels), name);
        return now;
    }
}
