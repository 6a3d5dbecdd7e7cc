package org.cxrgateway.delivery;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.OrthancPeer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * STOW-RS delivery to a real DICOMweb server, Orthanc's DICOMweb plugin: the objects arrive once (QIDO-RS), also
 * when sent again without a ledger; a server that is down is retried, dead-lettered and replayed once; a 4xx is
 * not retried. And what a 202 / 409 answer means, instance by instance (PS3.18 10.5.3).
 */
class DicomWebDeliveryTest {

    static final ObjectMapper JSON = new ObjectMapper();
    OrthancPeer orthanc;
    Path work;
    SimpleMeterRegistry metrics = new SimpleMeterRegistry();

    @BeforeEach
    void start() throws Exception {
        Files.createDirectories(Path.of("target"));
        work = Files.createTempDirectory(Path.of("target"), "dicomweb-delivery");
        orthanc = new OrthancPeer(work, "CXRGATEWAY", 11112).withDicomWeb();
        orthanc.start();
    }

    @AfterEach
    void stop() throws Exception {
        orthanc.close();
    }

    DeliveryService service(Path state, int attempts, String path) {
        return new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                List.of(new DicomWebDestination("orthanc", "http://127.0.0.1:" + orthanc.httpPort + path,
                        Optional.of("token-orthanc-ignores"), Optional.empty(), Optional.empty(), Duration.ofSeconds(30),
                        null, metrics)),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(attempts, Duration.ofMillis(50), Duration.ofMillis(200)),
                new PendingStore(state.resolve("pending")), metrics);
    }

    /** SOP Instance UIDs of the study, by Orthanc's QIDO-RS; a list, so a duplicate would show. */
    List<String> qido(String study) throws Exception {
        List<String> out = new ArrayList<>();
        for (JsonNode i : JSON.readTree(orthanc.get("/dicom-web/studies/" + study + "/instances"))) {
            out.add(i.path("00080018").path("Value").path(0).asText());
        }
        out.sort(null);
        return out;
    }

    double requests(String outcome) {
        var c = metrics.find("cxr.delivery.dicomweb.requests").tag("outcome", outcome).counter();
        return c == null ? 0 : c.count();
    }

    @Test
    void objectsArriveOnceEvenWhenSentAgainWithoutALedger() throws Exception {
        TestResults t = TestResults.study("40");
        StudyResult result = t.build();
        ReportSet expected = new ReportBuilder(ReportSettings.defaults()).build(result);
        Set<String> want = new TreeSet<>();
        expected.dicom().forEach(o -> want.add(o.sopInstanceUid()));
        try (DeliveryService svc = service(Files.createTempDirectory(work, "state"), 3, "/dicom-web")) {
            svc.submit(result).get(60, TimeUnit.SECONDS);
            assertEquals(0, svc.deadLetteredCount());
        }
        assertEquals(new ArrayList<>(want), qido(t.studyUid));
        // two requests: the SRs on their own ahead of the pictures (srsFirst), then the rest, none of the SRs again
        assertEquals(2, requests("200"), "the SRs, then the pictures");
        try (DeliveryService again = service(Files.createTempDirectory(work, "state2"), 3, "/dicom-web")) {
            again.submit(result).get(60, TimeUnit.SECONDS);
            assertEquals(0, again.deadLetteredCount());
        }
        assertEquals(new ArrayList<>(want), qido(t.studyUid), "sent again: still each once");
    }

    @Test
    void downIsRetriedDeadLetteredAndReplayedOnce() throws Exception {
        TestResults t = TestResults.study("41");
        Path state = Files.createTempDirectory(work, "state");
        try (DeliveryService svc = service(state, 3, "/dicom-web")) {
            orthanc.stop();
            svc.submit(t.build()).get(60, TimeUnit.SECONDS);
            assertEquals(1, svc.deadLetteredCount());
            assertEquals(3, requests("unreachable"), "three attempts");
            FileDeadLetterStore dl = new FileDeadLetterStore(state.resolve("dead-letters"));
            assertEquals("dicomweb-orthanc", dl.list().get(0).destination());

            orthanc.start();
            assertEquals(1, svc.replay("dicomweb-orthanc").get(60, TimeUnit.SECONDS));
            assertEquals(0, dl.list().size());
            assertEquals(0, svc.replay(null).get(60, TimeUnit.SECONDS));
        }
        List<String> sops = qido(t.studyUid);
        assertEquals(sops.size(), new TreeSet<>(sops).size(), "each once: " + sops);
        assertEquals(new ReportBuilder(ReportSettings.defaults()).build(t.build()).dicom().size(), sops.size());
    }

    @Test
    void aClientErrorIsPermanent() throws Exception {
        TestResults t = TestResults.study("42");
        Path state = Files.createTempDirectory(work, "state");
        try (DeliveryService svc = service(state, 3, "/no-such-dicom-web")) {
            svc.submit(t.build()).get(60, TimeUnit.SECONDS);
            assertEquals(1, svc.deadLetteredCount());
        }
        assertEquals(1, requests("404"), "a 404 is not retried");
        FileDeadLetterStore dl = new FileDeadLetterStore(state.resolve("dead-letters"));
        assertEquals("HTTP 404", dl.list().get(0).status());
    }

    @Test
    void conflictsForStoredInstancesAreDeliveredOtherFailuresAreNot() {
        Set<String> sent = Set.of("1.2.3", "1.2.4", "1.2.5");
        // PS3.18 10.5.3: 409 names what failed; 0111 (duplicate) and Azure's 45070 mean "already there"
        DicomWebDestination.Verdict dup = DicomWebDestination.interpret(409,
                "{\"00081198\":{\"vr\":\"SQ\",\"Value\":[" + item("1.2.3", 0x0111) + "," + item("1.2.4", 45070) + "]}}", sent);
        assertEquals(Set.of("1.2.3", "1.2.4"), dup.delivered());
        assertTrue(dup.permanent().isEmpty() && dup.retry().isEmpty());
        DicomWebDestination.Verdict mixed = DicomWebDestination.interpret(202, """
                {"00081198":{"vr":"SQ","Value":[%s,%s,%s]},
                 "00081199":{"vr":"SQ","Value":[{"00081155":{"vr":"UI","Value":["1.2.5"]}}]}}"""
                .formatted(item("1.2.3", 45070), item("1.2.4", 0xA700), item("9.9.9", 0xC000)), sent);
        assertEquals(Set.of("1.2.3", "1.2.5"), mixed.delivered());
        assertEquals(List.of("1.2.4 A700"), mixed.retry());
        assertEquals(List.of("9.9.9 C000"), mixed.permanent());
        assertEquals("0xC000", mixed.firstPermanentReason());
        assertEquals(sent, DicomWebDestination.interpret(409, "", sent).delivered(), "a 409 naming no instance");
        assertEquals(Set.of(), DicomWebDestination.interpret(202, "not json", sent).delivered());
    }

    private static String item(String sop, int reason) {
        return "{\"00081155\":{\"vr\":\"UI\",\"Value\":[\"" + sop + "\"]},\"00081197\":{\"vr\":\"US\",\"Value\":[" + reason + "]}}";
    }
}
