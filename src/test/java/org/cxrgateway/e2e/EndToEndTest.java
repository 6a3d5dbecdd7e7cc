package org.cxrgateway.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import org.cxrgateway.delivery.DeliveryService;
import org.cxrgateway.testing.FhirPeer;
import org.cxrgateway.testing.FhirValidation;
import org.cxrgateway.testing.MedplumPeer;
import org.cxrgateway.testing.ReportSearches;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The whole product against a real PACS: a modality sends a chest DX to Orthanc, Orthanc
 * auto-routes it to the gateway, and the SR and the Grad-CAM SCs come back into the same study
 * in Orthanc while the DiagnosticReports reach both FHIR servers (HAPI by transaction, Medplum
 * ordered), each of which refuses the first write, and are found there by the searches a user makes.
 */
@QuarkusTest
@WithTestResource(EndToEndPeers.class)
class EndToEndTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @Inject
    DeliveryService delivery;

    @Test
    void studyRoutedByThePacsComesBackAsValidSrScAndFhir() throws Exception {
        String study = uid();
        String sop = uid();
        Path source = EndToEndPeers.work.resolve("source-" + sop + ".dcm");
        Tools.Result made = Tools.run("/usr/bin/python3", "src/test/resources/make_source_dx.py", source.toString(),
                study, uid(), sop, "E2E-" + sop.substring(sop.length() - 6));
        assertEquals(0, made.exit(), made.out());

        // Each FHIR server refuses the first write it gets next (HAPI a 500, Medplum a 429 with Retry-After 1):
        // once nothing else is pending, that is this study's.
        long idle = System.nanoTime() + 180_000_000_000L;
        while (delivery.pendingCount("fhir") + delivery.pendingCount(EndToEndPeers.MEDPLUM_DESTINATION) > 0) {
            assertTrue(System.nanoTime() < idle, "earlier reports still pending");
            Thread.sleep(100);
        }
        EndToEndPeers.fhir.failNext.set(1);
        EndToEndPeers.medplum.throttleNext(1);
        int medplumRequestsBefore = EndToEndPeers.medplum.requests.size();

        Tools.Result sent = Tools.run("storescu", "-aet", "MODALITY", "-aec", "ORTHANC", "127.0.0.1",
                Integer.toString(EndToEndPeers.orthanc.dicomPort), source.toString());
        assertEquals(0, sent.exit(), sent.out());
        long sentAt = System.nanoTime();

        // Wait for the SR to arrive back in the source study.
        JsonNode instances = null;
        long deadline = System.nanoTime() + 180_000_000_000L;
        long srArrivedAt = 0;
        while (System.nanoTime() < deadline) {
            instances = instancesOf(study);
            if (count(instances, "SR") >= 2) {
                srArrivedAt = System.nanoTime();
                break;
            }
            Thread.sleep(100);
        }
        assertTrue(srArrivedAt > 0, "no SR arrived in Orthanc: " + instances);
        System.out.printf("e2e latency, C-STORE to the PACS -> both SRs in the PACS: %d ms%n",
                (srArrivedAt - sentAt) / 1_000_000);

        // One SR per model run (chest14, covid3); heatmap SCs for positive findings, at most the configured 4 each.
        assertEquals(2, count(instances, "SR"));
        // FHIR: the transaction arrived and validates against R4.
        long fhirDeadline = System.nanoTime() + 60_000_000_000L;
        while (EndToEndPeers.fhir.receivedBundles.isEmpty() && System.nanoTime() < fhirDeadline) {
            Thread.sleep(100);
        }
        assertFalse(EndToEndPeers.fhir.receivedBundles.isEmpty(), "no FHIR bundle received");
        for (String bundle : new ArrayList<>(EndToEndPeers.fhir.receivedBundles)) {
            assertEquals(List.of(), FhirValidation.errors(bundle).stream().map(Object::toString).toList());
        }
        // Counted for this study's SRs only: other tests share these peers.
        List<String> srs = PeerQueries.ofModality(PeerQueries.instancesOf(study), "SR").stream()
                .map(PeerQueries.PacsInstance::sopInstanceUid).toList();
        while (PeerQueries.reportsFor(srs).size() < 2 && System.nanoTime() < fhirDeadline) {
            Thread.sleep(100);
        }
        assertEquals(2, PeerQueries.reportsFor(srs).size(), "a DiagnosticReport per SR");
        assertTrue(EndToEndPeers.fhir.receivedBundles.stream().filter(b -> b.contains(study)).count() >= 2,
                "HAPI's 500 was retried");
        assertFalse(PeerQueries.reportsFor(srs).values().stream().anyMatch(r -> r.getSubject().getReference().startsWith("urn:")),
                "references resolved by the server");

        // Both FHIR servers: one DiagnosticReport per study and model after the retries, found by the searches a user makes.
        String patientId = "E2E-" + sop.substring(sop.length() - 6);
        String patientSystem = EndToEndPeers.fhir.stored.values().stream()
                .filter(r -> r instanceof org.hl7.fhir.r4.model.Patient p && p.getIdentifierFirstRep().getValue().equals(patientId))
                .map(r -> ((org.hl7.fhir.r4.model.Patient) r).getIdentifierFirstRep().getSystem()).findFirst().orElseThrow();
        for (FhirPeer server : List.<FhirPeer>of(EndToEndPeers.fhir, EndToEndPeers.medplum)) {
            String name = server == EndToEndPeers.fhir ? "HAPI" : "Medplum";
            List<ReportSearches.Found> found = new ArrayList<>();
            long searchDeadline = System.nanoTime() + 120_000_000_000L;
            while (true) {
                found.clear();
                for (String sr : srs) {
                    found.add(ReportSearches.find(server, sr, patientSystem, patientId));
                }
                if (found.stream().allMatch(f -> f.byIdentifier() > 0) || System.nanoTime() > searchDeadline) {
                    break;
                }
                Thread.sleep(250);
            }
            Set<String> reportIds = new HashSet<>();
            int results = 0;
            int media = 0;
            for (ReportSearches.Found f : found) {
                assertEquals(1, f.byIdentifier(), name + ": DiagnosticReport?identifier= finds exactly one per SR");
                assertEquals(List.of(), f.unresolved(), name + ": every reference of the report resolves");
                reportIds.add(f.reportId());
                results += f.report().path("result").size();
                media += f.report().path("media").size();
            }
            for (ReportSearches.Found f : found) {
                assertEquals(reportIds, new HashSet<>(f.byPatient()), name + ": the patient's reports are this study's two");
                assertEquals(results, f.findingsOfStudy(), name + ": Observation?derived-from=ImagingStudy finds every finding");
                assertEquals(media, f.heatmapsOfStudy(), name + ": Media?part-of=ImagingStudy finds every heatmap");
            }
            System.out.printf("e2e %s: %d DiagnosticReports found by identifier and by patient, %d Observations by "
                    + "derived-from, %d Media by part-of, %d references resolved%n", name, reportIds.size(), results, media,
                    found.stream().mapToInt(ReportSearches.Found::references).sum());
        }
        assertEquals(0, EndToEndPeers.medplum.throttledStillToCome(), "Medplum's 429 was met");
        List<MedplumPeer.Request> medplumRequests = List.copyOf(EndToEndPeers.medplum.requests)
                .subList(medplumRequestsBefore, EndToEndPeers.medplum.requests.size());
        System.out.printf("e2e Medplum (ordered): %d writes for this study's two reports, the first refused 429%n",
                medplumRequests.stream().filter(q -> !q.method().equals("GET")).count());
        // Every heatmap SC the report announces as Media reaches the PACS too.
        var reports = PeerQueries.reportsFor(srs).values();
        long scDeadline = System.nanoTime() + 60_000_000_000L;
        List<PeerQueries.PacsInstance> held = PeerQueries.instancesOf(study);
        while (!PeerQueries.explanationsArrived(held, reports) && System.nanoTime() < scDeadline) {
            Thread.sleep(200);
            held = PeerQueries.instancesOf(study);
        }
        instances = instancesOf(study);
        assertEquals(PeerQueries.mediaOf(reports), PeerQueries.ofSopClass(held, PeerQueries.SECONDARY_CAPTURE).size(),
                "one SC in the PACS per heatmap Media in FHIR");
        assertEquals(PeerQueries.gradCamMediaOf(reports), PeerQueries.ofSopClass(held, PeerQueries.PARAMETRIC_MAP).size(),
                "one Parametric Map in the PACS per Grad-CAM overlay");
        // the test chest14 package ships the guided graph, covid3 does not: guided pictures for some, not all
        int guided = PeerQueries.guidedMediaOf(reports);
        System.out.printf("e2e explanation objects: %d Grad-CAM SC, %d guided Grad-CAM SC, %d Parametric Maps%n",
                PeerQueries.gradCamMediaOf(reports), guided, PeerQueries.ofSopClass(held, PeerQueries.PARAMETRIC_MAP).size());
        assertTrue(guided > 0 && guided <= PeerQueries.gradCamMediaOf(reports), "guided Grad-CAM SCs: " + guided);
        Set<String> sops = new HashSet<>();
        for (JsonNode i : instances) {
            assertTrue(sops.add(i.get("MainDicomTags").get("SOPInstanceUID").asText()), "duplicate instance");
            JsonNode tags = JSON.readTree(EndToEndPeers.orthanc.get("/instances/" + i.get("ID").asText() + "/simplified-tags"));
            String modality = tags.get("Modality").asText();
            if (modality.equals("DX")) {
                continue;
            }
            Path f = EndToEndPeers.work.resolve("e2e-" + i.get("ID").asText() + ".dcm");
            Files.write(f, EndToEndPeers.orthanc.getBytes("/instances/" + i.get("ID").asText() + "/file"));
            assertEquals(List.of(), Tools.dciodvfyErrors(f), "dciodvfy " + modality);
            if (modality.equals("SR")) {
                Tools.Result dump = Tools.run("dsrdump", f.toString());
                assertEquals(0, dump.exit(), dump.out());
                assertTrue(dump.out().contains("not for diagnostic use"), "demo models are labelled");
            }
        }

    }

    private static String uid() {
        return "2.25." + new java.math.BigInteger(UUID.randomUUID().toString().replace("-", ""), 16);
    }

    private static JsonNode instancesOf(String studyUid) throws Exception {
        return JSON.readTree(EndToEndPeers.orthanc.post("/tools/find", """
                {"Level":"Instance","Expand":true,"Query":{"StudyInstanceUID":"%s"}}""".formatted(studyUid)));
    }

    private static int count(JsonNode instances, String modality) throws Exception {
        int n = 0;
        for (JsonNode i : instances) {
            JsonNode tags = JSON.readTree(EndToEndPeers.orthanc.get("/instances/" + i.get("ID").asText() + "/simplified-tags"));
            if (modality.equals(tags.path("Modality").asText())) {
                n++;
            }
        }
        return n;
    }
}
