package org.cxrgateway.dicomweb;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.io.ByteArrayInputStream;
import java.net.URI;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.cxrgateway.health.IngestReadinessTest;
import org.cxrgateway.ingest.IngestService;
import org.cxrgateway.ingest.Spool;
import org.cxrgateway.queue.EmbeddedKafkaTestResource;
import org.cxrgateway.testing.HttpTokens;
import org.cxrgateway.testing.Multipart;
import org.cxrgateway.testing.OrthancPeer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * STOW-RS in, over real HTTP against the running gateway (listener role, the test Kafka broker): what PS3.18
 * 10.5.3 answers for a request that is partly bad, wholly bad, too large, of the wrong type or malformed, and the
 * doors (401 without a token, 403 with one that lacks role ingest); each with its metric, and the good instance
 * spooled and its study published as a job, as a C-STORE one would be.
 */
@QuarkusTest
@TestProfile(StowTest.Profile.class)
@WithTestResource(EmbeddedKafkaTestResource.class)
class StowTest {

    /** The listener role with a data folder of its own. */
    public static class Profile extends IngestReadinessTest.ListenerRole {
        @Override
        public Map<String, String> getConfigOverrides() {
            Map<String, String> config = new java.util.HashMap<>(super.getConfigOverrides());
            config.put("cxr.data-dir", "target/test-data/quarkus-stow");
            config.put("cxr.assembly.quiet-period", "500ms");
            return config;
        }
    }

    private static final ObjectMapper JSON = new ObjectMapper();
    private static Path cases;
    private static String study;

    @TestHTTPResource("/")
    URL base;

    @Inject
    IngestService ingest;

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    @BeforeAll
    static void generate() throws Exception {
        Files.createDirectories(Path.of("target/test-data"));
        cases = Files.createTempDirectory(Path.of("target/test-data"), "stow-cases-").toAbsolutePath();
        Process p = new ProcessBuilder("/usr/bin/python3", "src/test/python/dicom_fixtures.py", "cases", cases.toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS) && p.exitValue() == 0, out);
        String[] lines = out.trim().split("\n");
        study = lines[lines.length - 1].trim();
    }

    @Test
    void oneGoodOneTruncatedOneNotDicomIs202AndTheGoodOneIsSpooledAndPublished() throws Exception {
        byte[] good = Files.readAllBytes(cases.resolve("mono2_12bit_rescale_window.dcm"));
        byte[] whole = Files.readAllBytes(cases.resolve("mono1_12bit_window.dcm"));
        byte[] truncated = Arrays.copyOf(whole, whole.length - 5000);
        byte[] notDicom = "this is a text file, not a DICOM instance\n".repeat(20).getBytes(StandardCharsets.US_ASCII);
        double partly = metric("cxr_dicomweb_stow_requests_total{reason=\"partly-stored\",status=\"202\"}");
        double incomplete = metric("cxr_ingest_instances_rejected_total{reason=\"INCOMPLETE_DATA_SET\",status=\"C000\"}");
        double notUnderstood = metric("cxr_ingest_instances_rejected_total{reason=\"CANNOT_UNDERSTAND\",status=\"C000\"}");

        HttpResponse<String> r = post("/dicomweb/studies", Multipart.CONTENT_TYPE, Multipart.of(List.of(good, truncated, notDicom)),
                HttpTokens.INGEST, null);
        assertEquals(202, r.statusCode(), r.body());
        assertEquals("application/dicom+json", r.headers().firstValue("Content-Type").orElse("").split(";")[0]);
        assertTrue(r.headers().firstValue("Warning").orElse("").startsWith("299 "), r.headers().toString());
        JsonNode body = JSON.readTree(r.body());
        JsonNode failed = body.at("/00081198/Value");
        assertEquals(2, failed.size(), r.body());
        String truncatedSop = sopOf(whole);
        assertEquals(truncatedSop, failed.get(0).at("/00081155/Value/0").asText(), "truncated: its UIDs are known");
        assertEquals(0xC000, failed.get(0).at("/00081197/Value/0").asInt());
        assertTrue(failed.get(1).at("/00081155/Value").isMissingNode(), "not DICOM: no UID to name");
        assertEquals(0xC000, failed.get(1).at("/00081197/Value/0").asInt());
        JsonNode stored = body.at("/00081199/Value");
        assertEquals(1, stored.size());
        String goodSop = sopOf(good);
        assertEquals(goodSop, stored.get(0).at("/00081155/Value/0").asText());

        assertEquals(partly + 1, metric("cxr_dicomweb_stow_requests_total{reason=\"partly-stored\",status=\"202\"}"));
        assertEquals(incomplete + 1, metric("cxr_ingest_instances_rejected_total{reason=\"INCOMPLETE_DATA_SET\",status=\"C000\"}"));
        assertEquals(notUnderstood + 1, metric("cxr_ingest_instances_rejected_total{reason=\"CANNOT_UNDERSTAND\",status=\"C000\"}"));
        Spool spool = ingest.spool();
        assertTrue(Files.isRegularFile(spool.instanceFile(study, goodSop)), "the good instance is in the spool");
        assertFalse(Files.exists(spool.instanceFile(study, truncatedSop)), "the truncated one is not");
        // the request ended the burst: after the quiet period the study is published with the good image eligible
        // (another test of this class may have published the same study before, without it: wait for a revision
        // that has it)
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!publishedWith(spool, goodSop) && System.nanoTime() < deadline) {
            Thread.sleep(200);
        }
        assertTrue(publishedWith(spool, goodSop), "the study published with the good instance eligible");

        // sent again: a duplicate is a success, as with C-STORE
        HttpResponse<String> again = post("/dicomweb/studies/" + study, Multipart.CONTENT_TYPE, Multipart.of(List.of(good)),
                HttpTokens.INGEST, null);
        assertEquals(200, again.statusCode(), again.body());
    }

    private static boolean publishedWith(Spool spool, String sop) throws java.io.IOException {
        return spool.lastPublished(study).map(p -> p.eligible().contains(sop)).orElse(false);
    }

    @Test
    void noneStoredIs409WithReasonsAndXmlOnRequest() throws Exception {
        byte[] good = Files.readAllBytes(cases.resolve("mono2_14bit_default_window.dcm"));
        String otherStudy = "1.2.826.0.1.3680043.8.498.1";
        double conflicts = metric("cxr_dicomweb_stow_requests_total{reason=\"none-stored\",status=\"409\"}");
        HttpResponse<String> r = post("/dicomweb/studies/" + otherStudy, Multipart.CONTENT_TYPE, Multipart.of(List.of(good)),
                HttpTokens.INGEST, "application/dicom+xml");
        assertEquals(409, r.statusCode(), r.body());
        assertEquals("application/dicom+xml", r.headers().firstValue("Content-Type").orElse("").split(";")[0]);
        assertTrue(r.body().contains("keyword=\"FailedSOPSequence\""), r.body());
        assertTrue(r.body().contains("<Value number=\"1\">" + 0xA900 + "</Value>"), "Study Instance UID mismatch: A900\n" + r.body());
        assertTrue(r.body().contains(sopOf(good)), r.body());
        assertEquals(conflicts + 1, metric("cxr_dicomweb_stow_requests_total{reason=\"none-stored\",status=\"409\"}"));
        assertFalse(Files.exists(ingest.spool().instanceFile(study, sopOf(good))));
    }

    @Test
    void overTheLimitIs413WithOrWithoutContentLength() throws Exception {
        byte[] big = Multipart.of(List.of(new byte[5 * 1024 * 1024])); // the test limit is 4M
        double before = metric("cxr_dicomweb_stow_requests_total{reason=\"too-large\",status=\"413\"}");
        assertEquals(413, post("/dicomweb/studies", Multipart.CONTENT_TYPE, big, HttpTokens.INGEST, null).statusCode());
        HttpRequest chunked = HttpRequest.newBuilder(uri("/dicomweb/studies")).timeout(Duration.ofSeconds(60))
                .header("Content-Type", Multipart.CONTENT_TYPE).header("Authorization", "Bearer " + HttpTokens.INGEST)
                .POST(HttpRequest.BodyPublishers.ofInputStream(() -> new ByteArrayInputStream(big))).build();
        int status;
        try {
            status = http.send(chunked, HttpResponse.BodyHandlers.ofString()).statusCode();
        } catch (java.io.IOException e) {
            status = -1; // the server may close before the client has sent everything; the metric tells
        }
        assertTrue(status == 413 || status == -1, "status " + status);
        assertEquals(before + 2, metric("cxr_dicomweb_stow_requests_total{reason=\"too-large\",status=\"413\"}"));
    }

    @Test
    void wrongTypeIs415AndMalformedIs400() throws Exception {
        byte[] good = Files.readAllBytes(cases.resolve("sc.dcm"));
        double unsupported = metric("cxr_dicomweb_stow_requests_total{reason=\"unsupported-media-type\",status=\"415\"}");
        double malformed = metric("cxr_dicomweb_stow_requests_total{reason=\"malformed\",status=\"400\"}");
        assertEquals(415, post("/dicomweb/studies", "application/dicom", good, HttpTokens.INGEST, null).statusCode());
        assertEquals(415, post("/dicomweb/studies", "multipart/related; type=\"application/dicom+xml\"; boundary="
                + Multipart.BOUNDARY, Multipart.of(List.of(good)), HttpTokens.INGEST, null).statusCode());
        byte[] whole = Multipart.of(List.of(good));
        byte[] noClose = Arrays.copyOf(whole, whole.length - ("--" + Multipart.BOUNDARY + "--\r\n").length());
        HttpResponse<String> r = post("/dicomweb/studies", Multipart.CONTENT_TYPE, noClose, HttpTokens.INGEST, null);
        assertEquals(400, r.statusCode());
        assertTrue(r.body().contains("close delimiter"), r.body());
        assertEquals(400, post("/dicomweb/studies", "multipart/related; type=\"application/dicom\"", whole,
                HttpTokens.INGEST, null).statusCode(), "no boundary");
        assertEquals(unsupported + 2, metric("cxr_dicomweb_stow_requests_total{reason=\"unsupported-media-type\",status=\"415\"}"));
        assertEquals(malformed + 2, metric("cxr_dicomweb_stow_requests_total{reason=\"malformed\",status=\"400\"}"));
    }

    @Test
    void noTokenIs401AndATokenWithoutRoleIngestIs403() throws Exception {
        byte[] body = Multipart.of(List.of(Files.readAllBytes(cases.resolve("sc.dcm"))));
        double missing = metric("cxr_http_auth_failures_total{path=\"dicomweb\",reason=\"missing-token\"}");
        double forbidden = metric("cxr_http_auth_failures_total{path=\"dicomweb\",reason=\"forbidden\"}");
        assertEquals(401, post("/dicomweb/studies", Multipart.CONTENT_TYPE, body, null, null).statusCode());
        assertEquals(403, post("/dicomweb/studies", Multipart.CONTENT_TYPE, body, HttpTokens.ADMIN, null).statusCode());
        assertEquals(missing + 1, metric("cxr_http_auth_failures_total{path=\"dicomweb\",reason=\"missing-token\"}"));
        assertEquals(forbidden + 1, metric("cxr_http_auth_failures_total{path=\"dicomweb\",reason=\"forbidden\"}"));
    }

    @Test
    void orthancPushesToUsAsAStowRsClient() throws Exception {
        Path work = Files.createTempDirectory(Path.of("target/test-data"), "stow-orthanc-").toAbsolutePath();
        try (OrthancPeer orthanc = new OrthancPeer(work, "CXRGATEWAY", 11112)
                .withDicomWeb("cxr", base.toString().replaceAll("/$", "") + "/dicomweb/", HttpTokens.INGEST)) {
            orthanc.start();
            List<String> names = List.of("mono2_12bit_voilut.dcm", "signed_16bit_sigmoid.dcm");
            StringBuilder ids = new StringBuilder();
            for (String name : names) {
                JsonNode uploaded = JSON.readTree(orthanc.postBytes("/instances",
                        Files.readAllBytes(cases.resolve(name)), "application/dicom"));
                ids.append(ids.length() == 0 ? "" : ",").append('"').append(uploaded.get("ID").asText()).append('"');
            }
            double ok = metric("cxr_dicomweb_stow_requests_total{reason=\"stored\",status=\"200\"}");
            // Orthanc's own STOW-RS client (DICOMweb plugin), with the bearer token of its HttpHeaders
            orthanc.post("/dicom-web/servers/cxr/stow", "{\"Resources\": [" + ids + "], \"Synchronous\": true}");
            assertEquals(ok + 1, metric("cxr_dicomweb_stow_requests_total{reason=\"stored\",status=\"200\"}"),
                    "one request, all stored");
            for (String name : names) {
                String sop = sopOf(Files.readAllBytes(cases.resolve(name)));
                assertTrue(Files.isRegularFile(ingest.spool().instanceFile(study, sop)), name + " spooled");
            }
        }
    }

    private HttpResponse<String> post(String path, String contentType, byte[] body, String token, String accept)
            throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(uri(path)).timeout(Duration.ofSeconds(60))
                .header("Content-Type", contentType).POST(HttpRequest.BodyPublishers.ofByteArray(body));
        if (token != null) {
            b.header("Authorization", "Bearer " + token);
        }
        if (accept != null) {
            b.header("Accept", accept);
        }
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    private URI uri(String path) {
        return URI.create(base.toString().replaceAll("/$", "") + path);
    }

    /** A Prometheus sample's value, 0 when absent. */
    private double metric(String sample) throws Exception {
        String text = http.send(HttpRequest.newBuilder(uri("/q/metrics")).build(), HttpResponse.BodyHandlers.ofString()).body();
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(sample) + " ([0-9.eE+-]+)$").matcher(text);
        return m.find() ? Double.parseDouble(m.group(1)) : 0;
    }

    /** The SOP Instance UID of a Part-10 file, read by pydicom (a reader other than ours). */
    private static String sopOf(byte[] file) throws Exception {
        Path f = Files.createTempFile(cases, "sop-", ".dcm");
        Files.write(f, file);
        Process p = new ProcessBuilder("/usr/bin/python3", "-c",
                "import pydicom,sys; print(pydicom.dcmread(sys.argv[1], stop_before_pixels=True).SOPInstanceUID)", f.toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).trim();
        p.waitFor(60, TimeUnit.SECONDS);
        return out;
    }
}
