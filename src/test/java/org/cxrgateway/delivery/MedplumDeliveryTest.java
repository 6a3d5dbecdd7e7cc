package org.cxrgateway.delivery;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.MedplumPeer;
import org.cxrgateway.testing.ReportSearches;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * FHIR delivery to Medplum's FHIR router, a real server that runs transactions holding conditional
 * operations serializable and caps them at 8 entries: the one-bundle transaction is refused and
 * dead-lettered with the server's words; ordered mode writes the report (each resource passing Medplum's own
 * validator, which the peer runs on every write), findable by the searches a user
 * makes, with every reference resolving, and writing it again creates nothing; auto falls back once.
 */
class MedplumDeliveryTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static final String URN = "urn:ietf:rfc:3986";
    MedplumPeer medplum;
    Path state;

    @BeforeEach
    void start() throws Exception {
        medplum = new MedplumPeer();
        Files.createDirectories(Path.of("target"));
        state = Files.createTempDirectory(Path.of("target"), "medplum-delivery");
    }

    @AfterEach
    void stop() {
        medplum.close();
    }

    DeliveryService service(Path dir, FhirWriteMode mode, SimpleMeterRegistry metrics) {
        return new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                List.of(new FhirDestination(medplum.baseUrl(), Optional.empty(), Optional.empty(), Optional.empty(),
                        Duration.ofSeconds(20), mode, 8, metrics)),
                new DeliveryLedger(dir.resolve("ledger")), new FileDeadLetterStore(dir.resolve("dead-letters")),
                new RetryPolicy(2, Duration.ofMillis(10), Duration.ofMillis(50)), new PendingStore(dir.resolve("pending")), metrics);
    }

    @Test
    void oneTransactionIsRefusedByItsSizeAndDeadLetteredWithTheServersWords() throws Exception {
        try (DeliveryService svc = service(state, FhirWriteMode.TRANSACTION, new SimpleMeterRegistry())) {
            svc.submit(TestResults.study("41").build()).get(60, TimeUnit.SECONDS);
            List<DeadLetterStore.DeadLetter> dl = new FileDeadLetterStore(state.resolve("dead-letters")).list();
            assertEquals(1, dl.size());
            assertTrue(dl.get(0).reason().contains("400") && dl.get(0).reason().contains("too many entries"), dl.get(0).reason());
            assertEquals(0, medplum.count("DiagnosticReport"));
        }
    }

    @Test
    void orderedWritesAFindableReportOnceWithEveryReferenceResolving() throws Exception {
        StudyResult r = TestResults.study("42").build();
        ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(r);
        try (DeliveryService svc = service(state, FhirWriteMode.ORDERED, new SimpleMeterRegistry())) {
            svc.submit(r).get(60, TimeUnit.SECONDS);
            assertEquals(1, svc.deliveredCount(), "delivered, not dead-lettered");
        }
        String sr = set.dicom().stream().filter(o -> o.kind().equals("SR")).findFirst().orElseThrow().sopInstanceUid();
        String[] patient = ReportSearches.patientIdentifier(set.fhirBundleJson());
        // subject.identifier is asked in its two steps here: the in-memory repository does not chain (FhirPeer)
        ReportSearches.Found found = ReportSearches.find(medplum, sr, patient[0], patient[1]);
        assertEquals(1, found.byIdentifier(), "DiagnosticReport?identifier= finds it");
        assertEquals(List.of(found.reportId()), found.byPatient(), "Patient?identifier= then DiagnosticReport?subject= finds it");
        assertEquals(4, found.findingsOfStudy(), "Observation?derived-from=ImagingStudy/... finds the findings");
        assertEquals(4, found.heatmapsOfStudy(), "Media?part-of=ImagingStudy/... (the search parameter the peer is given)");
        assertEquals(10, found.references(), "subject, study, 4 results, 4 media");
        assertEquals(List.of(), found.unresolved(), "every reference resolves on the server");

        // a fresh process (new ledger) writing the same report: everything is found, nothing created twice
        int observations = medplum.count("Observation");
        int media = medplum.count("Media");
        Path other = Files.createTempDirectory(Path.of("target"), "medplum-delivery-again");
        try (DeliveryService again = service(other, FhirWriteMode.ORDERED, new SimpleMeterRegistry())) {
            again.submit(r).get(60, TimeUnit.SECONDS);
            assertEquals(1, again.deliveredCount());
        }
        assertEquals(1, medplum.count("DiagnosticReport"));
        assertEquals(1, medplum.count("Patient"));
        assertEquals(1, medplum.count("ImagingStudy"));
        assertEquals(observations, medplum.count("Observation"));
        assertEquals(media, medplum.count("Media"));
    }

    @Test
    void autoFallsBackToOrderedOnceForThisServer() throws Exception {
        SimpleMeterRegistry metrics = new SimpleMeterRegistry();
        try (DeliveryService svc = service(state, FhirWriteMode.AUTO, metrics)) {
            svc.submit(TestResults.study("43").build()).get(60, TimeUnit.SECONDS);
            svc.submit(TestResults.study("44").build()).get(60, TimeUnit.SECONDS);
            assertEquals(2, svc.deliveredCount());
        }
        assertEquals(2, medplum.count("DiagnosticReport"));
        assertEquals(1.0, metrics.get("cxr.delivery.fhir.write.mode.fallbacks").tag("destination", "fhir").counter().count(), "one fallback, then ordered");
    }

    @Test
    void aConditionalCreateMatchingSeveralResourcesIsDeadLetteredNeverDuplicated() throws Exception {
        StudyResult r = TestResults.study("45").build();
        JsonNode patient = patientIdentifier(new ReportBuilder(ReportSettings.defaults()).build(r));
        String body = JSON.createObjectNode().put("resourceType", "Patient").set("identifier", JSON.createArrayNode().add(patient)).toString();
        medplum.create("Patient", body);
        medplum.create("Patient", body); // two records of one patient: the server cannot tell which is meant
        try (DeliveryService svc = service(state, FhirWriteMode.ORDERED, new SimpleMeterRegistry())) {
            svc.submit(r).get(60, TimeUnit.SECONDS);
            assertEquals(1, svc.deadLetteredCount());
        }
        List<DeadLetterStore.DeadLetter> dl = new FileDeadLetterStore(state.resolve("dead-letters")).list();
        assertEquals(1, dl.size());
        assertTrue(dl.get(0).reason().contains("412"), dl.get(0).reason());
        assertEquals(2, medplum.count("Patient"), "nothing created by the refused write");
        assertEquals(0, medplum.count("DiagnosticReport"));
    }

    @Test
    void a429WithRetryAfterIsHonoured() throws Exception {
        try (MedplumPeer busy = new MedplumPeer(java.util.Map.of("THROTTLE_FIRST", "1", "RETRY_AFTER", "2"))) {
            SimpleMeterRegistry metrics = new SimpleMeterRegistry();
            Path dir = Files.createTempDirectory(Path.of("target"), "medplum-429");
            // our own backoff is 10-50 ms: only the server's Retry-After can make the second attempt wait 2 s
            try (DeliveryService svc = new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                    List.of(new FhirDestination(busy.baseUrl(), Optional.empty(), Optional.empty(), Optional.empty(),
                            Duration.ofSeconds(20), FhirWriteMode.ORDERED, 8, metrics)),
                    new DeliveryLedger(dir.resolve("ledger")), new FileDeadLetterStore(dir.resolve("dead-letters")),
                    new RetryPolicy(3, Duration.ofMillis(10), Duration.ofMillis(50)), new PendingStore(dir.resolve("pending")), metrics)) {
                svc.submit(TestResults.study("47").build()).get(60, TimeUnit.SECONDS);
                assertEquals(1, svc.deliveredCount());
            }
            List<MedplumPeer.Request> writes = busy.requests.stream().filter(q -> !q.method().equals("GET")).toList();
            long gap = writes.get(1).atEpochMs() - writes.get(0).atEpochMs();
            assertTrue(gap >= 1900, "second attempt came " + gap + " ms after the 429, before the 2 s the server asked for");
            assertTrue(gap < 10_000, "second attempt came " + gap + " ms after the 429");
            assertEquals(1, busy.count("DiagnosticReport"));
        }
    }

    /**
     * kill -9 of the delivering process between the steps of one ordered write (the child writes in chunks of
     * 2, so 3 foundations, 2 transactions of Media, 4 Observations and the DiagnosticReport by conditional
     * update: 10 writes; the server holds each answer 400 ms, and the kill lands once the second transaction
     * has arrived, so that the first is answered and recorded and no update written), then a new process
     * resumes the pending report from the ledger's progress record: it sends only the unfinished steps (the
     * second transaction, its answer lost with the process, the Observations and the report), references the
     * foundations by the ids recorded, and ends with one of everything, nothing twice.
     */
    @Test
    void killedMidwayThroughAnOrderedWriteAndResumedCreatesNothingTwice() throws Exception {
        try (MedplumPeer slow = new MedplumPeer(java.util.Map.of("DELAY_MS", "400"))) {
            Process child = child("submit", slow.baseUrl());
            try {
                long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
                while (writes(slow.requests, "POST", "/fhir") < 2) {
                    assertTrue(child.isAlive() && System.nanoTime() < deadline, "the report never reached the server");
                    Thread.sleep(20);
                }
            } finally {
                child.destroyForcibly().waitFor(); // SIGKILL: no shutdown hook, no flush
            }
            Thread.sleep(1500); // let the server finish what was in flight
            int reportsAtCrash = slow.count("DiagnosticReport");
            assertEquals(0, reportsAtCrash, "the kill came before the report was written (else this test proves nothing)");
            Path ledger = state.resolve("ledger").resolve("fhir");
            List<Path> progress;
            try (var files = Files.list(ledger)) {
                progress = files.filter(f -> f.getFileName().toString().endsWith(".steps")).toList();
            }
            assertEquals(1, progress.size(), "one progress record for the report under way");
            JsonNode recorded = JSON.readTree(progress.get(0).toFile());
            assertEquals(3 + 2, recorded.size(), "Patient, Device, ImagingStudy and the first chunk's 2 recorded: " + recorded);
            int before = slow.requests.size();
            Process resumed = child("resume", slow.baseUrl());
            assertTrue(resumed.waitFor(90, TimeUnit.SECONDS), "resume did not finish");
            String out = new String(resumed.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            assertTrue(out.contains("delivered 1 dead-lettered 0"), out);
            List<MedplumPeer.Request> again = List.copyOf(slow.requests.subList(before, slow.requests.size()));
            System.out.printf("ordered write killed after %d writes; the resumed process sent %d: %s%n",
                    writes(slow.requests, null, null) - writes(again, null, null), writes(again, null, null),
                    again.stream().filter(q -> !q.method().equals("GET")).map(q -> q.method() + " " + q.url().split("\\?")[0]).toList());
            assertEquals(0, writes(again, "POST", "/fhir/Patient"), "the Patient recorded as written is not sent again");
            assertEquals(0, writes(again, "POST", "/fhir/Device"), "nor the Device");
            assertEquals(0, writes(again, "POST", "/fhir/ImagingStudy"), "nor the ImagingStudy");
            assertEquals(1, writes(again, "POST", "/fhir"), "only the second transaction: the first was recorded");
            assertEquals(4, writes(again, "PUT", "/fhir/Observation"), "the findings");
            assertEquals(1, writes(again, "PUT", "/fhir/DiagnosticReport"), "and the report");
            assertEquals(6, writes(again, null, null), "nothing else");
            try (var files = Files.list(ledger)) {
                assertEquals(List.of(), files.filter(f -> f.getFileName().toString().endsWith(".steps")).toList(),
                        "the progress record is gone with the acknowledgement");
            }
            assertEquals(1, slow.count("Patient"));
            assertEquals(1, slow.count("ImagingStudy"));
            assertEquals(4, slow.count("Observation"));
            assertEquals(4, slow.count("Media"));
            assertEquals(1, slow.count("DiagnosticReport"));
            // the ids recorded before the crash made the references of what the resumed process wrote
            ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(TestResults.study("46").build());
            String sr = set.dicom().stream().filter(o -> o.kind().equals("SR")).findFirst().orElseThrow().sopInstanceUid();
            String[] patient = ReportSearches.patientIdentifier(set.fhirBundleJson());
            ReportSearches.Found found = ReportSearches.find(slow, sr, patient[0], patient[1]);
            assertEquals(10, found.references(), "subject, study, 4 results, 4 media");
            assertEquals(List.of(), found.unresolved(), "every reference resolves on the server");
            assertEquals(4, found.findingsOfStudy());
            assertEquals(4, found.heatmapsOfStudy());
        }
    }

    /** Writes (not GET) with this method and path (before any query), each when not null. */
    private static long writes(List<MedplumPeer.Request> requests, String method, String path) {
        synchronized (requests) {
            return requests.stream().filter(q -> !q.method().equals("GET"))
                    .filter(q -> method == null || q.method().equals(method))
                    .filter(q -> path == null || q.url().split("\\?")[0].equals(path)).count();
        }
    }

    private Process child(String mode, String url) throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx512m", "-cp", System.getProperty("java.class.path"), OrderedDeliveryChild.class.getName(), mode,
                state.toAbsolutePath().toString(), url));
        if (mode.equals("submit")) {
            cmd.add("46");
        }
        return new ProcessBuilder(cmd).redirectErrorStream(true).start();
    }

    private static JsonNode patientIdentifier(ReportSet set) throws Exception {
        for (JsonNode e : JSON.readTree(set.fhirBundleJson()).path("entry")) {
            if (e.path("resource").path("resourceType").asText().equals("Patient")) {
                return e.path("resource").path("identifier").get(0);
            }
        }
        throw new AssertionError("no Patient in the bundle");
    }
}
