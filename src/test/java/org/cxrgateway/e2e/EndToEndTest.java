package org.cxrgateway.e2e;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import org.cxrgateway.testing.FhirValidation;
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
 * in Orthanc while the DiagnosticReport reaches the FHIR server.
 */
@QuarkusTest
@WithTestResource(EndToEndPeers.class)
class EndToEndTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void studyRoutedByThePacsComesBackAsValidSrScAndFhir() throws Exception {
        String study = uid();
        String sop = uid();
        Path source = EndToEndPeers.work.resolve("source-" + sop + ".dcm");
        Tools.Result made = Tools.run("/usr/bin/python3", "src/test/resources/make_source_dx.py", source.toString(),
                study, uid(), sop, "E2E-" + sop.substring(sop.length() - 6));
        assertEquals(0, made.exit(), made.out());

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
