package org.cxrgateway.delivery;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * cxr.delivery.retention: what delivery records per study (its history, the ledger's acknowledgements) is forgotten
 * once settled everywhere and unchanged for the retention, so that the state directory does not grow without end;
 * an unsettled study is kept however old.
 */
class RetentionTest {

    private static final long DAY = TimeUnit.DAYS.toMillis(1);

    @TempDir
    Path dir;

    private static void age(Path file, long days) throws Exception {
        Files.setLastModifiedTime(file, FileTime.fromMillis(System.currentTimeMillis() - days * DAY));
    }

    private static Path historyFile(Path studies, String uid) {
        return studies.resolve(DeliveryLedger.safe(uid) + ".json");
    }

    @Test
    void aStudyIsForgottenOnlyWhenSettledEverywhereAndUnchangedForTheRetention() throws Exception {
        Path studies = dir.resolve("studies");
        StudyHistory h = new StudyHistory(studies);
        List<String> destinations = List.of("pacs", "fhir");
        String settled = "1.2.3.1", half = "1.2.3.2", recent = "1.2.3.3", retracting = "1.2.3.4";
        for (String uid : List.of(settled, half, recent, retracting)) {
            StudyResult r = TestResults.study(uid.substring(6)).build();
            r.getStudy().setStudyInstanceUid(uid);
            h.handedOver(r.getStudy(), r.getJobId(), 0, ReportBuilder.issuedSrs(r));
            String key = StudyHistory.key(r.getJobId(), 0);
            h.delivered(uid, "pacs", key, "delivered");
            if (!uid.equals(half)) {
                h.delivered(uid, "fhir", key, "delivered");
                h.bundle(uid, key, "{\"resourceType\":\"Bundle\"}");
            }
        }
        h.retract(retracting, "r1", "wrong patient", "test");
        h.retractionDelivered(retracting, "pacs");
        for (String uid : List.of(settled, half, retracting)) {
            age(historyFile(studies, uid), 100);
        }
        age(historyFile(studies, recent), 10);

        assertEquals(1, h.prune(System.currentTimeMillis() - 90 * DAY, destinations));
        assertTrue(h.life(settled).isEmpty(), "settled everywhere and 100 days old: forgotten");
        assertTrue(h.lastBundle(settled).isEmpty(), "with its last FHIR bundle");
        assertTrue(h.life(half).isPresent(), "the FHIR server still owes an outcome");
        assertTrue(h.life(recent).isPresent(), "10 days old");
        assertTrue(h.life(retracting).isPresent(), "its retraction is not yet acknowledged by the FHIR server");
        h.retractionDelivered(retracting, "fhir");
        age(historyFile(studies, retracting), 100);
        assertEquals(1, h.prune(System.currentTimeMillis() - 90 * DAY, destinations));
        assertTrue(h.life(retracting).isEmpty());
    }

    @Test
    void theServicesHousekeepingForgetsOldSettledStudies() throws Exception {
        Path state = dir.resolve("state");
        StudyResult old = TestResults.study("51").build(), fresh = TestResults.study("52").build();
        try (DeliveryService svc = new DeliveryService(new ReportBuilder(ReportSettings.defaults()),
                List.of(new OutboxDestination(dir.resolve("outbox"))), new DeliveryLedger(state.resolve("ledger")),
                new FileDeadLetterStore(state.resolve("dead-letters")), new RetryPolicy(2, Duration.ofMillis(10), Duration.ofMillis(20)),
                new PendingStore(state.resolve("pending")), new SimpleMeterRegistry())) {
            svc.submit(old).get(60, TimeUnit.SECONDS);
            svc.submit(fresh).get(60, TimeUnit.SECONDS);
            String oldUid = old.getStudy().getStudyInstanceUid(), freshUid = fresh.getStudy().getStudyInstanceUid();
            age(historyFile(state.resolve("studies"), oldUid), 91);
            svc.prune(Duration.ofDays(90));
            assertTrue(svc.life(oldUid).isEmpty(), "forgotten after the retention");
            assertTrue(svc.life(freshUid).isPresent());
            assertThrows(DeliveryService.UnknownStudy.class, () -> svc.retract(oldUid, "too late", "test"));
            Thread.sleep(50);
            svc.prune(Duration.ofMillis(10)); // everything is older than that now, and settled
            assertTrue(svc.life(freshUid).isEmpty());
        }
    }

    @Test
    void oldAcknowledgementsAndProgressRecordsAreForgotten() throws Exception {
        DeliveryLedger ledger = new DeliveryLedger(dir.resolve("ledger"));
        DeliveryLedger.View pacs = ledger.view("pacs"), fhir = ledger.view("fhir");
        pacs.ack("1.2.3.100");
        pacs.ack("1.2.3.101");
        fhir.steps("bundle-1", java.util.Map.of("urn:uuid:a", "Patient/1"));
        age(dir.resolve("ledger/pacs/1.2.3.100"), 91);
        age(dir.resolve("ledger/fhir/bundle-1.steps"), 91);
        assertEquals(2, ledger.prune(System.currentTimeMillis() - 90 * DAY));
        assertTrue(!pacs.acked("1.2.3.100") && pacs.acked("1.2.3.101"));
        assertEquals(java.util.Map.of(), fhir.steps("bundle-1"));
        assertEquals(0, new DeliveryLedger(dir.resolve("none")).prune(System.currentTimeMillis()), "no ledger yet");
    }
}
