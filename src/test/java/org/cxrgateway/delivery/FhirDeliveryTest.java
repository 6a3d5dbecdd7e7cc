package org.cxrgateway.delivery;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.FhirTestServer;
import org.cxrgateway.testing.FhirValidation;
import org.cxrgateway.testing.ReportSearches;
import org.hl7.fhir.r4.model.DiagnosticReport;
import org.hl7.fhir.r4.model.Observation;
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
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class FhirDeliveryTest {

    FhirTestServer server;
    Path state;

    @BeforeEach
    void start() throws Exception {
        server = new FhirTestServer();
        Files.createDirectories(Path.of("target"));
        state = Files.createTempDirectory(Path.of("target"), "fhir-delivery");
    }

    @AfterEach
    void stop() throws Exception {
        server.close();
    }

    @Test
    void bundleValidatesAgainstR4BaseProfiles() throws Exception {
        ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(TestResults.study("20").build());
        var errors = FhirValidation.errors(set.fhirBundleJson());
        assertEquals(List.of(), errors.stream().map(m -> m.getLocationString() + ": " + m.getMessage()).toList());
        assertTrue(set.fhirBundleJson().contains("\"ifNoneExist\""));
    }

    @Test
    void serverFailingThenSucceedingGetsTheReportOnceAndRedeliveryCreatesNothing() throws Exception {
        server.failNext.set(2);
        DeliveryService svc = service(Optional.of("s3cret-token"));
        StudyResult r = TestResults.study("21").build();
        svc.submit(r).get(30, TimeUnit.SECONDS);
        assertEquals(3, server.receivedBundles.size(), "two injected 500s, then success");
        assertEquals(1, server.count("DiagnosticReport"));
        assertEquals(4, server.count("Observation"));
        assertEquals(4, server.count("Media"), "a Grad-CAM overlay and a guided Grad-CAM picture per positive finding");
        assertEquals(1, server.count("Patient"));
        assertTrue(server.authorizations.stream().allMatch(a -> a.equals("Bearer s3cret-token")));
        DiagnosticReport report = (DiagnosticReport) server.stored.values().stream()
                .filter(x -> x instanceof DiagnosticReport).findFirst().orElseThrow();
        assertEquals(DiagnosticReport.DiagnosticReportStatus.PRELIMINARY, report.getStatus());
        assertEquals(2, report.getConclusionCode().size());
        Observation cardio = (Observation) server.stored.values().stream().filter(x -> x instanceof Observation o
                && o.getCode().getCodingFirstRep().getCode().equals("8186001")).findFirst().orElseThrow();
        assertEquals(0.81, cardio.getValueQuantity().getValue().doubleValue(), 1e-4);
        assertEquals("POS", cardio.getInterpretationFirstRep().getCodingFirstRep().getCode());
        int createsAfterFirst = server.creates.get();

        // same result again, and a fresh process (new ledger) sending it again: no new resource
        svc.submit(r).get(30, TimeUnit.SECONDS);
        assertEquals(3, server.receivedBundles.size(), "the ledger knows the bundle was acknowledged");
        svc.close();
        Path other = Files.createTempDirectory(Path.of("target"), "fhir-delivery-fresh");
        DeliveryService fresh = new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                List.of(new FhirDestination(server.baseUrl(), Optional.empty(), Optional.of("u"), Optional.of("p"), Duration.ofSeconds(10))),
                new DeliveryLedger(other.resolve("ledger")), new FileDeadLetterStore(other.resolve("dl")),
                new RetryPolicy(3, Duration.ofMillis(10), Duration.ofMillis(50)),
                new PendingStore(other.resolve("pending")), new SimpleMeterRegistry());
        fresh.submit(r).get(30, TimeUnit.SECONDS);
        fresh.close();
        assertEquals(4, server.receivedBundles.size());
        assertEquals(createsAfterFirst, server.creates.get(), "conditional create: nothing duplicated");
        assertTrue(server.authorizations.get(3).startsWith("Basic "));
    }

    /**
     * The searches a user makes find the report on HAPI too, over HTTP: by its identifier, by its patient's
     * identifier (chained subject.identifier), its findings by Observation?derived-from= its ImagingStudy and its
     * heatmaps by Media?part-of=; every reference it holds resolves to what the transaction created.
     */
    @Test
    void theReportIsFoundByTheSearchesAUserMakesAndItsReferencesResolve() throws Exception {
        StudyResult r = TestResults.study("24").build();
        ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(r);
        try (DeliveryService svc = service(Optional.empty())) {
            svc.submit(r).get(30, TimeUnit.SECONDS);
            assertEquals(1, svc.deliveredCount());
        }
        String sr = set.dicom().stream().filter(o -> o.kind().equals("SR")).findFirst().orElseThrow().sopInstanceUid();
        String[] patient = ReportSearches.patientIdentifier(set.fhirBundleJson());
        ReportSearches.Found found = ReportSearches.find(server, sr, patient[0], patient[1]);
        assertEquals(1, found.byIdentifier(), "DiagnosticReport?identifier=");
        assertEquals(List.of(found.reportId()), found.byPatient(), "DiagnosticReport?subject.identifier=");
        assertEquals(4, found.findingsOfStudy(), "Observation?derived-from=ImagingStudy/...");
        assertEquals(4, found.heatmapsOfStudy(), "Media?part-of=ImagingStudy/...");
        assertEquals(10, found.references(), "subject, study, 4 results, 4 media");
        assertEquals(List.of(), found.unresolved(), "every reference resolves on the server");
        // and nothing else answers: another patient's identifier, another study
        assertEquals(0, server.search("DiagnosticReport", "subject.identifier", patient[0] + "|NOT-" + patient[1])
                .path("entry").size());
        assertEquals(0, server.search("Observation", "derived-from", "ImagingStudy/999999").path("entry").size());
    }

    @Test
    void serverDownDeadLettersThenReplayDelivers() throws Exception {
        server.failNext.set(100);
        DeliveryService svc = service(Optional.empty());
        svc.submit(TestResults.study("22").build()).get(30, TimeUnit.SECONDS);
        FileDeadLetterStore dl = new FileDeadLetterStore(state.resolve("dead-letters"));
        assertEquals(1, dl.list().size());
        assertEquals("fhir", dl.list().get(0).destination());
        assertTrue(dl.list().get(0).reason().contains("500"), dl.list().get(0).reason());
        assertFalse(dl.list().get(0).reason().contains("s3cret"));
        assertEquals(0, server.count("DiagnosticReport"));
        server.failNext.set(0);
        assertEquals(1, svc.replay(null).get(30, TimeUnit.SECONDS));
        assertEquals(1, server.count("DiagnosticReport"));
        assertEquals(0, dl.list().size());
        svc.close();
    }

    @Test
    void aResultHandedOverIsDurableAndResumedAfterARestart() throws Exception {
        server.failNext.set(1000);
        StudyResult r = TestResults.study("23").build();
        RetryPolicy slow = new RetryPolicy(100, Duration.ofSeconds(30), Duration.ofSeconds(60));
        DeliveryService first = new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                List.of(new FhirDestination(server.baseUrl(), Optional.empty(), Optional.empty(), Optional.empty(), Duration.ofSeconds(10))),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                slow, new PendingStore(state.resolve("pending")), new SimpleMeterRegistry());
        first.submit(r);
        // accept returns only once the copy is durable: the pending file exists before any attempt settles
        assertEquals(1, new PendingStore(state.resolve("pending")).list("fhir").size());
        long deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (server.receivedBundles.isEmpty() && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertEquals(1, server.receivedBundles.size(), "first attempt failed; the retry is 15 s or more away");
        first.close(); // the "crash": the retry never runs

        server.failNext.set(0);
        SimpleMeterRegistry metrics = new SimpleMeterRegistry();
        DeliveryService second = new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                List.of(new FhirDestination(server.baseUrl(), Optional.empty(), Optional.empty(), Optional.empty(), Duration.ofSeconds(10))),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(3, Duration.ofMillis(20), Duration.ofMillis(100)), new PendingStore(state.resolve("pending")),
                metrics);
        second.resume();
        deadline = System.nanoTime() + Duration.ofSeconds(20).toNanos();
        while (second.pendingCount("fhir") > 0 || second.deliveredCount() == 0) {
            assertTrue(System.nanoTime() < deadline, "resumed delivery did not finish");
            Thread.sleep(20);
        }
        assertEquals(1, server.count("DiagnosticReport"));
        assertEquals(0, new PendingStore(state.resolve("pending")).list("fhir").size());
        assertEquals(1.0, metrics.get("cxr.delivery").tags("destination", "fhir", "outcome", "delivered").counter().count());
        assertEquals(1, metrics.get("cxr.study.end.to.end").timer().count(), "fully delivered: timed once");
        // a restart after that finds nothing to do
        second.resume();
        assertEquals(0, second.pendingCount("fhir"));
        assertEquals(2, server.receivedBundles.size());
        second.close();
    }

    DeliveryService service(Optional<String> token) {
        return new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                List.of(new FhirDestination(server.baseUrl(), token, Optional.empty(), Optional.empty(), Duration.ofSeconds(10))),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(3, Duration.ofMillis(20), Duration.ofMillis(100)),
                new PendingStore(state.resolve("pending")), new SimpleMeterRegistry());
    }
}
