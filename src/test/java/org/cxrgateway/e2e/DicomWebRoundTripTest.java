package org.cxrgateway.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import org.cxrgateway.testing.HttpTokens;
import org.cxrgateway.testing.Multipart;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.Test;

/**
 * DICOMweb both ways with a real peer, Orthanc's DICOMweb plugin: chest radiographs come in by STOW-RS (posted by
 * a client, and pushed by Orthanc's own STOW-RS client), and the SR and SCs go back to Orthanc by STOW-RS, where
 * its QIDO-RS shows each exactly once.
 */
@QuarkusTest
@WithTestResource(DicomWebPeers.class)
class DicomWebRoundTripTest {

    private static final ObjectMapper JSON = new ObjectMapper();
    private final HttpClient http = HttpClient.newHttpClient();

    @Test
    void stowPostedStudyComesBackToOrthancByStowRs() throws Exception {
        String study = uid();
        List<byte[]> files = List.of(source(study, "A1"), source(study, "A2"));
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + DicomWebPeers.httpPort
                        + "/dicomweb/studies")).header("Content-Type", Multipart.CONTENT_TYPE)
                .header("Authorization", "Bearer " + HttpTokens.INGEST).timeout(Duration.ofSeconds(60))
                .POST(HttpRequest.BodyPublishers.ofByteArray(Multipart.of(files))).build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), r.body());
        long posted = System.nanoTime();
        Map<String, List<String>> back = awaitResults(study, 0);
        System.out.printf("DICOMweb round trip, STOW-RS to us -> both SRs in Orthanc by STOW-RS: %d ms%n",
                (System.nanoTime() - posted) / 1_000_000);
        assertResultsOnce(back, 0);
    }

    @Test
    void orthancPushedStudyComesBackToOrthancByStowRs() throws Exception {
        String study = uid();
        List<String> ids = new ArrayList<>();
        for (byte[] f : List.of(source(study, "B1"), source(study, "B2"))) {
            ids.add(JSON.readTree(DicomWebPeers.orthanc.postBytes("/instances", f, "application/dicom")).get("ID").asText());
        }
        // Orthanc's STOW-RS client pushes the two sources to us, with the bearer token of its HttpHeaders
        JsonNode job = JSON.readTree(DicomWebPeers.orthanc.post("/dicom-web/servers/cxr/stow",
                "{\"Resources\": [\"" + String.join("\",\"", ids) + "\"], \"Synchronous\": true}"));
        assertTrue(job != null);
        Map<String, List<String>> back = awaitResults(study, 2);
        assertResultsOnce(back, 2);
    }

    /** Waits until Orthanc's QIDO-RS shows both SRs of the study (one per model run), and a little more for the SCs. */
    private Map<String, List<String>> awaitResults(String study, int sources) throws Exception {
        long deadline = System.nanoTime() + Duration.ofSeconds(240).toNanos();
        Map<String, List<String>> byModality = Map.of();
        while (System.nanoTime() < deadline) {
            byModality = qido(study);
            if (byModality.getOrDefault("SR", List.of()).size() >= 2) {
                Thread.sleep(3000); // the same delivery carries the SCs; give a late duplicate time to show
                return qido(study);
            }
            Thread.sleep(250);
        }
        throw new AssertionError("no SR came back by STOW-RS within 240 s; Orthanc has " + byModality);
    }

    private static void assertResultsOnce(Map<String, List<String>> byModality, int sources) {
        List<String> all = byModality.values().stream().flatMap(List::stream).toList();
        assertEquals(all.size(), all.stream().distinct().count(), "every instance once: " + byModality);
        assertEquals(2, byModality.get("SR").size(), "one SR per model run: " + byModality);
        assertTrue(byModality.getOrDefault("OT", List.of()).size() + byModality.getOrDefault("SC", List.of()).size() >= 1,
                "Grad-CAM Secondary Captures: " + byModality);
        assertEquals(sources, byModality.getOrDefault("DX", List.of()).size(), "sources in Orthanc: " + byModality);
        System.out.printf("QIDO-RS: %s%n", byModality.entrySet().stream()
                .map(e -> e.getKey() + " " + e.getValue().size()).toList());
    }

    /** QIDO-RS (PS3.18 10.6) of Orthanc's DICOMweb plugin: the study's instances, SOP Instance UIDs by modality. */
    private Map<String, List<String>> qido(String study) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                        + DicomWebPeers.orthanc.httpPort + "/dicom-web/studies/" + study + "/instances?includefield=00080060"))
                .header("Accept", "application/dicom+json").timeout(Duration.ofSeconds(30)).build(), HttpResponse.BodyHandlers.ofString());
        Map<String, List<String>> out = new HashMap<>();
        if (r.statusCode() != 200 || r.body().isBlank()) {
            return out;
        }
        for (JsonNode i : JSON.readTree(r.body())) {
            String modality = i.path("00080060").path("Value").path(0).asText("?");
            out.computeIfAbsent(modality, k -> new ArrayList<>()).add(i.path("00080018").path("Value").path(0).asText());
        }
        return out;
    }

    private static byte[] source(String study, String tag) throws Exception {
        String sop = uid();
        Path f = DicomWebPeers.work.resolve("source-" + sop + ".dcm");
        Tools.Result made = Tools.run("/usr/bin/python3", "src/test/resources/make_source_dx.py", f.toString(), study,
                uid(), sop, "DW-" + tag);
        assertEquals(0, made.exit(), made.out());
        return Files.readAllBytes(f);
    }

    private static String uid() {
        return "2.25." + new java.math.BigInteger(UUID.randomUUID().toString().replace("-", ""), 16);
    }
}
