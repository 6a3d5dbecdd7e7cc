package org.cxrgateway.delivery;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.FhirTestServer;
import org.cxrgateway.testing.FhirValidation;
import org.cxrgateway.testing.MedplumPeer;
import org.cxrgateway.testing.OrthancPeer;
import org.cxrgateway.testing.Tools;
import org.hl7.fhir.r4.model.DiagnosticReport;
import org.hl7.fhir.r4.model.Observation;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A later result of a study supersedes the earlier one, against real peers: Orthanc receives a new SR in the same
 * AI series whose Predecessor Documents Sequence names the old SR and whose content says so (dsrdump, dciodvfy
 * clean), plus an IOCM rejection note for what it replaces; the FHIR server (HAPI, transaction; Medplum, ordered)
 * keeps one DiagnosticReport per study and model, "amended" at version 2, and a retry changes nothing.
 */
class SupersessionTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static final String URN = "urn:ietf:rfc:3986";
    Path work;
    OrthancPeer orthanc;
    FhirTestServer fhir;

    @BeforeEach
    void start() throws Exception {
        work = Files.createTempDirectory(Files.createDirectories(Path.of("target")), "supersession").toAbsolutePath();
        orthanc = new OrthancPeer(work, "CXRGATEWAY", OrthancPeer.freePort());
        orthanc.start();
        fhir = new FhirTestServer();
    }

    @AfterEach
    void stop() throws Exception {
        orthanc.close();
        fhir.close();
    }

    private DeliveryService service(Path state, List<Destination> destinations, boolean reject) {
        return new DeliveryService(new ReportBuilder(ReportSettings.defaults().withRejectSuperseded(reject)), destinations,
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(3, Duration.ofMillis(20), Duration.ofMillis(100)), new PendingStore(state.resolve("pending")),
                new SimpleMeterRegistry());
    }

    private List<Destination> pacsAndHapi(Path state) {
        return List.of(new PacsDestination("orthanc", "127.0.0.1", orthanc.dicomPort, "ORTHANC", "CXRGATEWAY",
                        state.resolve("spool"), null),
                new FhirDestination(fhir.baseUrl(), Optional.empty(), Optional.empty(), Optional.empty(), Duration.ofSeconds(10)));
    }

    @Test
    void aLateInstanceSupersedesTheSrAndAmendsTheOneReport() throws Exception {
        Path state = work.resolve("state");
        StudyResult first = TestResults.study("61").build();
        StudyResult late = TestResults.lateInstance(first, 1);
        String firstSr = sr(new ReportBuilder(ReportSettings.defaults()).build(first));
        try (DeliveryService svc = service(state, pacsAndHapi(state), true)) {
            svc.submit(first).get(60, TimeUnit.SECONDS);
            DiagnosticReport before = onlyReport();
            assertEquals(DiagnosticReport.DiagnosticReportStatus.PRELIMINARY, before.getStatus());
            assertEquals("1", before.getMeta().getVersionId());
            svc.submit(late).get(60, TimeUnit.SECONDS);
            assertEquals(4, svc.deliveredCount(), "both results to both destinations, nothing dead-lettered");
        }
        List<JsonNode> srs = instances(first.getStudy().getStudyInstanceUid(), "SR");
        assertEquals(2, srs.size(), "the first SR and the one that supersedes it");
        JsonNode newer = srs.stream().filter(s -> !s.path("SOPInstanceUID").asText().equals(firstSr)).findFirst().orElseThrow();
        JsonNode older = srs.stream().filter(s -> s.path("SOPInstanceUID").asText().equals(firstSr)).findFirst().orElseThrow();
        assertEquals(older.path("SeriesInstanceUID").asText(), newer.path("SeriesInstanceUID").asText(), "same AI series");
        JsonNode predecessors = newer.path("PredecessorDocumentsSequence");
        assertEquals(1, predecessors.size());
        JsonNode series = predecessors.get(0).path("ReferencedSeriesSequence").get(0);
        assertEquals(older.path("SeriesInstanceUID").asText(), series.path("SeriesInstanceUID").asText());
        assertEquals(firstSr, series.path("ReferencedSOPSequence").get(0).path("ReferencedSOPInstanceUID").asText());
        assertEquals(first.getStudy().getStudyInstanceUid(), predecessors.get(0).path("StudyInstanceUID").asText());
        Path newerFile = file(newer);
        assertEquals(List.of(), Tools.dciodvfyErrors(newerFile), "dciodvfy SR");
        Tools.Result dump = Tools.run("dsrdump", "+Pl", newerFile.toString());
        assertEquals(0, dump.exit(), dump.out());
        assertTrue(dump.out().contains("supersedes the earlier AI report"), dump.out());
        System.out.printf("supersession: SR %s names %s as predecessor%n", newer.path("SOPInstanceUID").asText(), firstSr);

        // the IOCM rejection note lists the superseded SR and nothing the new result re-issued
        List<JsonNode> kos = instances(first.getStudy().getStudyInstanceUid(), "KO");
        assertEquals(1, kos.size());
        Path koFile = file(kos.get(0));
        assertEquals(List.of(), Tools.dciodvfyErrors(koFile), "dciodvfy KO");
        Tools.Result koDump = Tools.run("dsrdump", "+Pl", "+Pu", koFile.toString());
        assertEquals(0, koDump.exit(), koDump.out());
        assertTrue(koDump.out().contains("Rejected for Quality Reasons") && koDump.out().contains(firstSr), koDump.out());

        // FHIR: one report for the study and model, amended in place at version 2; its Observations amended too
        DiagnosticReport report = onlyReport();
        assertEquals(DiagnosticReport.DiagnosticReportStatus.AMENDED, report.getStatus());
        assertEquals("2", report.getMeta().getVersionId());
        assertEquals(8, fhir.count("Observation"), "4 findings on each of 2 images, the first image's updated in place");
        long amended = fhir.stored.values().stream().filter(r -> r instanceof Observation o
                && o.getStatus() == Observation.ObservationStatus.AMENDED).count();
        assertEquals(8, amended);
        for (String bundle : new ArrayList<>(fhir.receivedBundles)) {
            assertEquals(List.of(), FhirValidation.errors(bundle).stream().map(Object::toString).toList());
        }

        // the later result sent again with the ledger lost (only the conditional operations stand guard): nothing moves
        int updates = fhir.updates.get();
        int creates = fhir.creates.get();
        int bundles = fhir.receivedBundles.size();
        try (var ledger = Files.walk(state.resolve("ledger"))) {
            ledger.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
        try (DeliveryService again = service(state, List.of(new FhirDestination(fhir.baseUrl(), Optional.empty(),
                Optional.empty(), Optional.empty(), Duration.ofSeconds(10))), true)) {
            again.submit(late).get(60, TimeUnit.SECONDS);
        }
        assertEquals(bundles + 1, fhir.receivedBundles.size(), "sent again");
        assertEquals(updates, fhir.updates.get(), "the same bundle again changes nothing");
        assertEquals(creates, fhir.creates.get());
        assertEquals("2", onlyReport().getMeta().getVersionId());
    }

    @Test
    void aRescoreByANewModelVersionSupersedesInTheSameSeries() throws Exception {
        Path state = work.resolve("state");
        StudyResult first = TestResults.study("62").build();
        StudyResult rescored = TestResults.rescored(first, 1, "1.1.0");
        try (DeliveryService svc = service(state, pacsAndHapi(state), false)) {
            svc.submit(first).get(60, TimeUnit.SECONDS);
            svc.submit(rescored).get(60, TimeUnit.SECONDS);
        }
        List<JsonNode> srs = instances(first.getStudy().getStudyInstanceUid(), "SR");
        assertEquals(2, srs.size());
        assertEquals(srs.get(0).path("SeriesInstanceUID").asText(), srs.get(1).path("SeriesInstanceUID").asText());
        JsonNode newer = srs.stream().filter(s -> s.has("PredecessorDocumentsSequence")).findFirst().orElseThrow();
        assertEquals(List.of(), Tools.dciodvfyErrors(file(newer)));
        assertEquals(0, instances(first.getStudy().getStudyInstanceUid(), "KO").size(), "rejection notes are off");
        DiagnosticReport report = onlyReport();
        assertEquals(DiagnosticReport.DiagnosticReportStatus.AMENDED, report.getStatus());
        assertEquals("2", report.getMeta().getVersionId());
        assertTrue(report.getConclusion().contains("1.1.0"), report.getConclusion());
        assertEquals(4, fhir.count("Observation"), "same image, same findings: updated in place");
    }

    @Test
    void orderedWritesAmendTheOneReportOnMedplum() throws Exception {
        try (MedplumPeer medplum = new MedplumPeer()) {
            Path state = work.resolve("medplum");
            StudyResult first = TestResults.study("63").build();
            try (DeliveryService svc = service(state, List.of(new FhirDestination(medplum.baseUrl(), Optional.empty(),
                    Optional.empty(), Optional.empty(), Duration.ofSeconds(20), FhirWriteMode.ORDERED, 8, null)), false)) {
                svc.submit(first).get(60, TimeUnit.SECONDS);
                JsonNode v1 = medplum.search("DiagnosticReport", "identifier", URN + "|" + reportIdentifier(first)).path("entry");
                assertEquals(1, v1.size());
                svc.submit(TestResults.lateInstance(first, 1)).get(60, TimeUnit.SECONDS);
                assertEquals(2, svc.deliveredCount());
                assertEquals(1, medplum.count("DiagnosticReport"));
                JsonNode report = medplum.search("DiagnosticReport", "identifier", URN + "|" + reportIdentifier(first))
                        .path("entry").get(0).path("resource");
                assertEquals("amended", report.path("status").asText());
                assertEquals(v1.get(0).path("resource").path("id").asText(), report.path("id").asText(), "updated in place");
                assertNotEquals(v1.get(0).path("resource").path("meta").path("versionId").asText(),
                        report.path("meta").path("versionId").asText(), "a new version");
                JsonNode history = medplum.read("DiagnosticReport/" + report.path("id").asText() + "/_history");
                assertNotNull(history);
                assertEquals(2, history.path("entry").size(), "two versions of the one report");
                assertEquals(8, medplum.count("Observation"));
                assertEquals(8, report.path("result").size());

                // a retraction through the same ordered writes: the one report and its findings entered-in-error
                svc.retract(first.getStudy().getStudyInstanceUid(), "model recalled", "ops").getValue().get(60, TimeUnit.SECONDS);
                JsonNode retracted = medplum.search("DiagnosticReport", "identifier", URN + "|" + reportIdentifier(first))
                        .path("entry").get(0).path("resource");
                assertEquals("entered-in-error", retracted.path("status").asText());
                assertEquals(report.path("id").asText(), retracted.path("id").asText());
                assertEquals(1, medplum.count("DiagnosticReport"));
                for (JsonNode ref : retracted.path("result")) {
                    assertEquals("entered-in-error", medplum.read(ref.path("reference").asText()).path("status").asText());
                }
            }
        }
    }

    @Test
    void aRetractionWithdrawsTheResultsOnceAndASecondChangesNothing() throws Exception {
        Path state = work.resolve("state");
        StudyResult first = TestResults.study("64").build();
        String study = first.getStudy().getStudyInstanceUid();
        try (DeliveryService svc = service(state, pacsAndHapi(state), true)) {
            svc.submit(first).get(60, TimeUnit.SECONDS);
            svc.submit(TestResults.lateInstance(first, 1)).get(60, TimeUnit.SECONDS);
            int pacsObjects = JSON.readTree(orthanc.post("/tools/find", """
                    {"Level":"Instance","Query":{"StudyInstanceUID":"%s"}}""".formatted(study))).size();
            svc.retract(study, "model recalled by its vendor", "ops").getValue().get(60, TimeUnit.SECONDS);
            DiagnosticReport report = onlyReport();
            assertEquals(DiagnosticReport.DiagnosticReportStatus.ENTEREDINERROR, report.getStatus());
            assertEquals("3", report.getMeta().getVersionId(), "preliminary, amended, entered-in-error");
            assertTrue(report.getConclusion().contains("model recalled by its vendor"), report.getConclusion());
            assertTrue(fhir.stored.values().stream().filter(r -> r instanceof Observation).allMatch(r ->
                    ((Observation) r).getStatus() == Observation.ObservationStatus.ENTEREDINERROR));
            List<JsonNode> srs = instances(study, "SR");
            assertEquals(3, srs.size(), "two reports and the retraction");
            JsonNode retraction = srs.stream().filter(s -> s.path("PredecessorDocumentsSequence").path(0)
                    .path("ReferencedSeriesSequence").path(0).path("ReferencedSOPSequence").size() == 2).findFirst().orElseThrow();
            Path f = file(retraction);
            assertEquals(List.of(), Tools.dciodvfyErrors(f), "dciodvfy retraction SR");
            Tools.Result dump = Tools.run("dsrdump", "+Pl", f.toString());
            assertEquals(0, dump.exit(), dump.out());
            assertTrue(dump.out().contains("RETRACTED") && dump.out().contains("model recalled by its vendor"), dump.out());
            assertEquals(2, instances(study, "KO").size(), "the supersession's note and the retraction's");
            int after = JSON.readTree(orthanc.post("/tools/find", """
                    {"Level":"Instance","Query":{"StudyInstanceUID":"%s"}}""".formatted(study))).size();
            assertEquals(pacsObjects + 2, after, "one retraction SR and one rejection note");

            int updates = fhir.updates.get();
            int bundles = fhir.receivedBundles.size();
            StudyHistory.AlreadyRetracted again = org.junit.jupiter.api.Assertions.assertThrows(StudyHistory.AlreadyRetracted.class,
                    () -> svc.retract(study, "again", "ops"));
            assertEquals("model recalled by its vendor", again.retraction.reason());
            // a result arriving after the retraction is not delivered either
            svc.submit(TestResults.lateInstance(first, 2)).get(60, TimeUnit.SECONDS);
            Thread.sleep(500);
            assertEquals(updates, fhir.updates.get());
            assertEquals(bundles, fhir.receivedBundles.size());
            assertEquals(after, JSON.readTree(orthanc.post("/tools/find", """
                    {"Level":"Instance","Query":{"StudyInstanceUID":"%s"}}""".formatted(study))).size());
        }
    }

    private static String reportIdentifier(StudyResult r) {
        return org.cxrgateway.report.FhirBundleBuilder.reportIdentifier(r.getStudy().getStudyInstanceUid(),
                r.getImages().get(0).getRuns().get(0).getModelId()).getValue();
    }

    private DiagnosticReport onlyReport() {
        List<DiagnosticReport> reports = fhir.stored.values().stream().filter(r -> r instanceof DiagnosticReport)
                .map(r -> (DiagnosticReport) r).toList();
        assertEquals(1, reports.size(), "one DiagnosticReport per study and model");
        return reports.get(0);
    }

    private static String sr(ReportSet set) {
        return set.dicom().stream().filter(o -> o.kind().equals("SR")).findFirst().orElseThrow().sopInstanceUid();
    }

    /** The instances of one modality in the study, as Orthanc's full simplified tags (with an "ID"). */
    private List<JsonNode> instances(String study, String modality) throws Exception {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode i : JSON.readTree(orthanc.post("/tools/find", """
                {"Level":"Instance","Query":{"StudyInstanceUID":"%s"}}""".formatted(study)))) {
            JsonNode tags = JSON.readTree(orthanc.get("/instances/" + i.asText() + "/simplified-tags"));
            if (modality.equals(tags.path("Modality").asText())) {
                ((com.fasterxml.jackson.databind.node.ObjectNode) tags).put("ID", i.asText());
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
}
