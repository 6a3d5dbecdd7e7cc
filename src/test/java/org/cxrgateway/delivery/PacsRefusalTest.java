package org.cxrgateway.delivery;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.UnaryOperator;
import org.cxrgateway.dicom.DimseStatus;
import org.cxrgateway.dicom.StoreScu;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.StoreScpPeer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A PACS that refuses: dcmtk's storescp answers 0xA700 (out of resources) when it cannot write its output folder
 * and 0xA900 (data set does not match SOP class) when the data set's SOP Instance UID is not the command's. The
 * first is retried, the second dead-lettered at once, with its status.
 */
class PacsRefusalTest {

    static final String DESTINATION = "pacs-refuser";
    Path work;
    StoreScpPeer storescp;
    SimpleMeterRegistry metrics;

    @BeforeEach
    void start() throws Exception {
        Files.createDirectories(Path.of("target"));
        work = Files.createTempDirectory(Path.of("target"), "pacs-refusal").toAbsolutePath();
        storescp = new StoreScpPeer(work, "REFUSER");
        metrics = new SimpleMeterRegistry();
    }

    @AfterEach
    void stop() throws Exception {
        storescp.close();
    }

    /** The object with its File Meta's SOP Instance UID (which our SCU puts in the command) changed by one digit. */
    static ReportSet.DicomObject mismatched(ReportSet.DicomObject o) {
        byte[] part10 = o.part10().clone();
        byte[] uid = o.sopInstanceUid().getBytes(StandardCharsets.US_ASCII);
        // the first occurrence is (0002,0003): the meta information precedes the data set
        int at = indexOf(part10, uid);
        int last = at + uid.length - 1;
        part10[last] = (byte) (part10[last] == '9' ? '8' : part10[last] + 1);
        return new ReportSet.DicomObject(o.kind(), o.sopClassUid(), o.sopInstanceUid(), o.seriesInstanceUid(), part10);
    }

    static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new IllegalArgumentException("not found");
    }

    Path write(ReportSet.DicomObject o, String name) throws Exception {
        Path f = work.resolve(name + ".dcm");
        Files.write(f, o.part10());
        return f;
    }

    @Test
    void eachInstanceGetsItsOwnStatusAndKind() throws Exception {
        ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(TestResults.study("51").build());
        Path sr = write(set.dicom().get(0), "sr");
        Path bad = write(mismatched(set.dicom().get(1)), "mismatched");
        Path sc = write(set.dicom().get(2), "sc");

        Map<Path, DimseStatus> out = StoreScu.store("127.0.0.1", storescp.port, "REFUSER", "CXRGATEWAY", List.of(sr, bad, sc));
        assertEquals(List.of(sr, bad, sc), new ArrayList<>(out.keySet()), "one status per instance, in order");
        assertEquals(DimseStatus.SUCCESS, out.get(sr).code());
        assertEquals(DimseStatus.DATA_SET_DOES_NOT_MATCH_SOP_CLASS, out.get(bad).code(), out.toString());
        assertEquals(DimseStatus.Kind.PERMANENT_FAILURE, out.get(bad).kind());
        assertEquals(DimseStatus.SUCCESS, out.get(sc).code(), "a refusal does not end the association");

        storescp.cannotWrite();
        Map<Path, DimseStatus> full = StoreScu.store("127.0.0.1", storescp.port, "REFUSER", "CXRGATEWAY", List.of(sr));
        assertEquals(DimseStatus.OUT_OF_RESOURCES, full.get(sr).code(), full.toString());
        assertEquals(DimseStatus.Kind.TRANSIENT_FAILURE, full.get(sr).kind());
        assertTrue(storescp.log().contains("cannot write DICOM file"), storescp.log());
    }

    DeliveryService service(Path state, int attempts, UnaryOperator<ReportSet> change) {
        return service(state, attempts, change, storescp.port);
    }

    DeliveryService service(Path state, int attempts, UnaryOperator<ReportSet> change, int port) {
        PacsDestination pacs = new PacsDestination("refuser", "127.0.0.1", port, "REFUSER", "CXRGATEWAY",
                state.resolve("spool"));
        // the objects as built, or with one changed before it goes out: the refusal itself is storescp's
        Destination d = new Destination() {
            @Override
            public String name() {
                return pacs.name();
            }

            @Override
            public void deliver(ReportSet set, DeliveryLedger.View ledger) throws DeliveryException {
                pacs.deliver(change.apply(set), ledger);
            }
        };
        return new DeliveryService(new ReportBuilder(ReportSettings.defaults()), List.of(d),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(attempts, Duration.ofMillis(100), Duration.ofMillis(200)),
                new PendingStore(state.resolve("pending")), metrics);
    }

    double retries() {
        Counter c = metrics.find("cxr.delivery.retries").tag("destination", DESTINATION).counter();
        return c == null ? 0 : c.count();
    }

    @Test
    void aPermanentRefusalIsDeadLetteredAtOnceWithItsStatus() throws Exception {
        StudyResult result = TestResults.study("52").build();
        ReportSet expected = new ReportBuilder(ReportSettings.defaults()).build(result);
        String refusedUid = expected.dicom().get(1).sopInstanceUid();
        Path state = Files.createTempDirectory(work, "state");
        UnaryOperator<ReportSet> oneMismatched = set -> {
            List<ReportSet.DicomObject> objects = new ArrayList<>(set.dicom());
            objects.set(1, mismatched(objects.get(1)));
            return new ReportSet(set.studyInstanceUid(), set.jobId(), objects, set.fhirBundleJson());
        };
        long t0 = System.nanoTime();
        try (DeliveryService svc = service(state, 5, oneMismatched)) {
            svc.submit(result).get(60, TimeUnit.SECONDS);
            assertEquals(1, svc.deadLetteredCount());
            assertEquals(0, svc.deliveredCount());
        }
        System.out.printf("A900: dead-lettered after %d ms, %d retries%n", (System.nanoTime() - t0) / 1_000_000, (long) retries());
        assertEquals(0.0, retries(), "a permanent refusal is not retried");
        List<DeadLetterStore.DeadLetter> letters = new FileDeadLetterStore(state.resolve("dead-letters")).list();
        assertEquals(1, letters.size());
        assertEquals(DESTINATION, letters.get(0).destination());
        assertTrue(letters.get(0).status().startsWith("0xA900"), letters.get(0).status());
        assertTrue(letters.get(0).reason().contains(refusedUid), letters.get(0).reason());
        // the others were stored and acknowledged: a replay sends only what was refused
        DeliveryLedger.View ledger = new DeliveryLedger(state.resolve("ledger")).view(DESTINATION);
        for (ReportSet.DicomObject o : expected.dicom()) {
            assertEquals(!o.sopInstanceUid().equals(refusedUid), ledger.acked(o.sopInstanceUid()), o.sopInstanceUid());
        }
    }

    @Test
    void outOfResourcesIsRetriedThenDeadLetteredWithItsStatus() throws Exception {
        storescp.cannotWrite();
        Path state = Files.createTempDirectory(work, "state");
        try (DeliveryService svc = service(state, 3, UnaryOperator.identity())) {
            svc.submit(TestResults.study("53").build()).get(60, TimeUnit.SECONDS);
            assertEquals(1, svc.deadLetteredCount());
        }
        assertEquals(2.0, retries(), "3 attempts");
        List<DeadLetterStore.DeadLetter> letters = new FileDeadLetterStore(state.resolve("dead-letters")).list();
        assertEquals(1, letters.size());
        assertTrue(letters.get(0).status().startsWith("0xA700"), letters.get(0).status());
    }

    @Test
    void outOfResourcesIsRetriedUntilThePeerRecovers() throws Exception {
        storescp.cannotWrite();
        StudyResult result = TestResults.study("54").build();
        int objects = new ReportBuilder(ReportSettings.defaults()).build(result).dicom().size();
        try (DeliveryService svc = service(Files.createTempDirectory(work, "state"), 20, UnaryOperator.identity())) {
            CompletableFuture<Void> done = svc.submit(result);
            long end = System.nanoTime() + 30_000_000_000L;
            while (retries() < 1 && System.nanoTime() < end) {
                Thread.sleep(20);
            }
            assertTrue(retries() >= 1, "refused at least once");
            storescp.canWrite();
            done.get(60, TimeUnit.SECONDS);
            assertEquals(1, svc.deliveredCount());
            assertEquals(0, svc.deadLetteredCount());
        }
        System.out.printf("A700 then recovery: delivered after %d retries%n", (long) retries());
        assertEquals(objects, storescp.receivedFiles().size());
    }

    @Test
    void aPermanentAssociationRejectIsDeadLetteredAtOnce() throws Exception {
        Path state = Files.createTempDirectory(work, "state");
        try (StoreScpPeer refusing = new StoreScpPeer(Files.createTempDirectory(work, "refusing"), "REFUSER", "--refuse");
             DeliveryService svc = service(state, 5, UnaryOperator.identity(), refusing.port)) {
            svc.submit(TestResults.study("55").build()).get(60, TimeUnit.SECONDS);
            assertEquals(1, svc.deadLetteredCount());
        }
        assertEquals(0.0, retries(), "rejected-permanent is not retried");
        List<DeadLetterStore.DeadLetter> letters = new FileDeadLetterStore(state.resolve("dead-letters")).list();
        assertEquals(1, letters.size());
        // storescp --refuse: rejected-permanent (1), service user (1), no reason given (1)
        assertEquals("A-ASSOCIATE-RJ result 1 source 1 reason 1", letters.get(0).status());
    }
}
