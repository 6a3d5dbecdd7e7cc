package org.cxrgateway.ingest;

import org.cxrgateway.testing.RawStoreScu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.function.UnaryOperator;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.cxrgateway.dicom.DicomFiles;
import org.cxrgateway.schema.v2.SkippedInstance;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyJob;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The listener against real dcmtk peers (echoscu, storescu), through the spool and the study
 * assembler, with the in-memory job collector as the sink.
 */
class ListenerIngestTest {

    static final Duration QUIET = Duration.ofMillis(500);
    static Path fixtures;
    static String studyUid;
    IngestHarness harness;

    @BeforeAll
    static void fixtures() throws Exception {
        fixtures = Fixtures.newDir("listener");
        studyUid = Fixtures.cases(fixtures);
        // compressed copies with their own SOP Instance UIDs, same study
        Fixtures.runOk(fixtures, "dcmcjpeg", "+ua", "+e1", "mono2_12bit_rescale_window.dcm", "jpeg_sv1.dcm");
        Fixtures.runOk(fixtures, "dcmcjpls", "+ua", "mono2_12bit_voilut.dcm", "jls.dcm");
    }

    @AfterEach
    void stop() {
        if (harness != null) {
            harness.close();
        }
    }

    IngestHarness start(Path spool, long minFree, List<String> allowed, IngestHarness.Collector sink) throws Exception {
        harness = new IngestHarness(spool, minFree, allowed, sink, QUIET);
        return harness;
    }

    /** A harness whose sink fails as the Kafka sink does while the broker is down. */
    IngestHarness.Collector startWithBrokerDown(Path spool) throws Exception {
        IngestHarness.Collector down = new IngestHarness.Collector();
        down.failWith.set(new StudyJobSink.Unavailable("broker down", null));
        start(spool, 0, List.of(), down);
        return down;
    }

    Fixtures.Result storescu(String... files) throws Exception {
        List<String> cmd = Fixtures.command("storescu", "-v", "-aec", "CXRGATEWAY", "127.0.0.1",
                Integer.toString(harness.port()));
        cmd.addAll(List.of(files));
        return Fixtures.run(fixtures, cmd.toArray(String[]::new));
    }

    static long successes(Fixtures.Result r) {
        return r.output().lines().filter(l -> l.contains("Received Store Response (Success)")).count();
    }

    static long spooled(Path spool) throws IOException {
        try (Stream<Path> s = Files.walk(spool.resolve("studies"))) {
            return s.filter(p -> p.toString().endsWith(".dcm")).count();
        }
    }

    @Test
    void echoAndCalledAeCheck() throws Exception {
        start(Fixtures.newDir("spool"), 0, List.of(), new IngestHarness.Collector());
        Fixtures.Result ok = Fixtures.run(null, "echoscu", "-v", "-aec", "CXRGATEWAY", "127.0.0.1", "" + harness.port());
        assertEquals(0, ok.exit(), ok.output());
        assertTrue(ok.output().contains("Received Echo Response (Success)"), ok.output());

        Fixtures.Result wrong = Fixtures.run(null, "echoscu", "-aec", "NOTUS", "127.0.0.1", "" + harness.port());
        assertNotEquals(0, wrong.exit());
        assertTrue(wrong.output().contains("Called AE Title Not Recognized"), wrong.output());
        assertEquals(1, harness.awaitCount(1, "cxr.dicom.associations", "result", "rejected", "reason", "CALLED_AE_NOT_RECOGNIZED"));
        assertEquals(1, harness.count("cxr.dicom.associations", "result", "accepted"));
    }

    @Test
    void callingAeAllowListWithHost() throws Exception {
        start(Fixtures.newDir("spool"), 0, List.of("PACS1@127.0.0.1", "PACS2@192.0.2.1"), new IngestHarness.Collector());
        Fixtures.Result allowed = Fixtures.run(null, "echoscu", "-aet", "PACS1", "-aec", "CXRGATEWAY", "127.0.0.1", "" + harness.port());
        assertEquals(0, allowed.exit(), allowed.output());

        Fixtures.Result unknown = Fixtures.run(null, "echoscu", "-aet", "STRANGER", "-aec", "CXRGATEWAY", "127.0.0.1", "" + harness.port());
        assertNotEquals(0, unknown.exit());
        assertTrue(unknown.output().contains("Calling AE Title Not Recognized"), unknown.output());

        // known AE, but from a host it is not allowed from
        Fixtures.Result wrongHost = Fixtures.run(null, "echoscu", "-aet", "PACS2", "-aec", "CXRGATEWAY", "127.0.0.1", "" + harness.port());
        assertNotEquals(0, wrongHost.exit());
        assertTrue(wrongHost.output().contains("Calling AE Title Not Recognized"), wrongHost.output());
        assertEquals(2, harness.awaitCount(2, "cxr.dicom.associations", "result", "rejected", "reason", "CALLING_AE_NOT_RECOGNIZED"));
    }

    /**
     * A study with more eligible images than cxr.assembly.max-images: the job holds the first ones (SOP Instance UID
     * order) and lists the others as skipped, TOO_MANY_IMAGES, so that one study cannot fill the listener's memory.
     */
    @Test
    void imagesBeyondMaxImagesAreSkippedNotDecoded() throws Exception {
        IngestHarness.Collector sink = new IngestHarness.Collector();
        harness = new IngestHarness(Fixtures.newDir("spool"), 0, List.of(), sink, QUIET, null, UnaryOperator.identity(), 2);
        Fixtures.Result r = storescu("mono2_12bit_rescale_window.dcm", "mono1_12bit_window.dcm", "mono2_12bit_voilut.dcm",
                "bad_lateral.dcm");
        assertEquals(4, successes(r), r.output());
        StudyJob job = sink.awaitJobs(1, Duration.ofSeconds(30)).get(0);
        assertEquals(2, job.getImages().size());
        List<String> eligible = new java.util.ArrayList<>(job.getImages().stream().map(SourceImage::getSopInstanceUid).toList());
        Map<String, String> skipped = job.getSkipped().stream()
                .collect(Collectors.toMap(SkippedInstance::getSopInstanceUid, SkippedInstance::getReason));
        assertEquals(2, skipped.size(), skipped.toString());
        assertEquals(1, skipped.values().stream().filter(Eligibility.TOO_MANY_IMAGES::equals).count(), skipped.toString());
        assertTrue(skipped.containsValue(Eligibility.LATERAL_VIEW), skipped.toString());
        String over = skipped.entrySet().stream().filter(e -> e.getValue().equals(Eligibility.TOO_MANY_IMAGES)).findFirst()
                .orElseThrow().getKey();
        eligible.forEach(uid -> assertTrue(uid.compareTo(over) < 0, "the first images by SOP Instance UID are kept"));
        assertEquals(1, harness.count("cxr.ingest.instances.ineligible", "reason", Eligibility.TOO_MANY_IMAGES));
    }

    @Test
    void studyWithBadInputYieldsOneJobWithEveryEligibleImage() throws Exception {
        Path spool = Fixtures.newDir("spool");
        IngestHarness.Collector sink = new IngestHarness.Collector();
        start(spool, 0, List.of(), sink);

        List<String> accepted = List.of("mono2_12bit_rescale_window.dcm", "mono1_12bit_window.dcm", "mono2_12bit_voilut.dcm",
                "bad_lateral.dcm", "bad_no_pixel_data.dcm", "sc.dcm", "bad_knee.dcm");
        Fixtures.Result r = storescu(accepted.toArray(String[]::new));
        assertEquals(accepted.size(), successes(r), r.output());
        // compressed: storescu proposes the file's own transfer syntax only when told to
        for (String[] compressed : new String[][] {{"-xv", "j2k_lossless_mono1.dcm"}, {"-xw", "j2k_lossy_mono2.dcm"},
                {"-xs", "jpeg_sv1.dcm"}, {"-xd", "mono2_14bit_default_window.dcm"}}) {
            Fixtures.Result c = storescu(compressed);
            assertEquals(1, successes(c), c.output());
        }

        // CT: not a SOP class we accept, so its presentation context is rejected
        Fixtures.Result ct = storescu("bad_ct.dcm");
        assertEquals(0, successes(ct), ct.output());
        assertTrue(ct.output().contains("No presentation context"), ct.output());
        assertTrue(harness.count("cxr.dicom.presentation.contexts.rejected", "reason", "ABSTRACT_SYNTAX_NOT_SUPPORTED") >= 1);

        // JPEG-LS only: its presentation context is rejected, storescu cannot transcode, nothing stored
        Fixtures.Result jls = storescu("-xt", "-R", "jls.dcm");
        assertEquals(0, successes(jls), jls.output());
        assertTrue(harness.count("cxr.dicom.presentation.contexts.rejected", "reason", "TRANSFER_SYNTAX_NOT_SUPPORTED") >= 1);

        List<StudyJob> jobs = sink.awaitJobs(1, Duration.ofSeconds(30));
        assertEquals(1, jobs.size());
        StudyJob job = jobs.get(0);
        assertEquals(studyUid, job.getStudy().getStudyInstanceUid());
        assertEquals(0, job.getRevision());
        assertFalse(job.getUpdate());
        assertEquals("PH-0001", job.getStudy().getPatientId());
        assertEquals("ACC0001", job.getStudy().getAccessionNumber());
        assertEquals(7, job.getImages().size(), "every eligible image is in the job");
        Set<String> reasons = job.getSkipped().stream().map(SkippedInstance::getReason).collect(Collectors.toSet());
        assertEquals(Set.of(Eligibility.LATERAL_VIEW, Eligibility.NO_PIXEL_DATA, Eligibility.SECONDARY_CAPTURE,
                Eligibility.NOT_CHEST), reasons);
        for (SourceImage img : job.getImages()) {
            assertTrue(img.getImage().getPixels().remaining() < 1_000_000);
            assertEquals(img.getSourceColumns() / (double) img.getSourceRows(),
                    img.getImage().getWidth() / (double) img.getImage().getHeight(), 0.01);
        }
        assertEquals(1, harness.count("cxr.ingest.instances.ineligible", "reason", Eligibility.LATERAL_VIEW));
        assertEquals(1, harness.count("cxr.ingest.instances.ineligible", "reason", Eligibility.NO_PIXEL_DATA));
        assertEquals(11, harness.count("cxr.ingest.instances.received"));
        assertEquals(1, harness.awaitCount(1, "cxr.ingest.studies.published", "update", "false"));
        assertTrue(harness.count("cxr.ingest.received.bytes") > 100_000);
        assertEquals(11, spooled(spool));
        // the job id is the deterministic hash of the study and its instance set
        List<String> all = Stream.concat(job.getImages().stream().map(SourceImage::getSopInstanceUid),
                job.getSkipped().stream().map(SkippedInstance::getSopInstanceUid)).toList();
        assertEquals(StudyJobBuilder.jobId(studyUid, all), job.getJobId());

        // the same instances again: duplicates, no second copy, no new job
        Fixtures.Result again = storescu("mono2_12bit_rescale_window.dcm", "bad_lateral.dcm");
        assertEquals(2, successes(again), again.output());
        assertEquals(11, spooled(spool));
        assertEquals(2, harness.count("cxr.ingest.instances.duplicate"));
        Thread.sleep(QUIET.toMillis() * 3);
        assertEquals(1, sink.jobs().size(), "duplicates do not produce a job");
    }

    @Test
    void lateInstanceProducesAnUpdatedJob() throws Exception {
        IngestHarness.Collector sink = new IngestHarness.Collector();
        start(Fixtures.newDir("spool"), 0, List.of(), sink);
        assertEquals(2, successes(storescu("mono2_12bit_rescale_window.dcm", "mono1_12bit_window.dcm")));
        assertEquals(1, sink.awaitJobs(1, Duration.ofSeconds(20)).size());
        assertEquals(1, successes(storescu("mono2_14bit_default_window.dcm")));
        List<StudyJob> jobs = sink.awaitJobs(2, Duration.ofSeconds(20));
        assertEquals(2, jobs.size());
        StudyJob update = jobs.get(1);
        assertEquals(1, update.getRevision());
        assertTrue(update.getUpdate());
        assertEquals(3, update.getImages().size());
        assertNotEquals(jobs.get(0).getJobId(), update.getJobId());
        assertEquals(1, harness.awaitCount(1, "cxr.ingest.studies.published", "update", "true"));
    }

    @Test
    void outOfSpaceAnswersOutOfResourcesAndStoresNothing() throws Exception {
        Path spool = Fixtures.newDir("spool");
        start(spool, Long.MAX_VALUE, List.of(), new IngestHarness.Collector());
        Fixtures.Result r = storescu("mono2_12bit_rescale_window.dcm");
        assertEquals(0, successes(r), r.output());
        assertTrue(r.output().contains("Refused: OutOfResources"), r.output());
        assertEquals(0, spooled(spool));
        assertEquals(1, harness.count("cxr.ingest.instances.rejected", "reason", "OUT_OF_RESOURCES", "status", "A700"));
        assertFalse(harness.spool.healthy());
    }

    @Test
    void garbageAfterValidCommandGetsFailureStatusAndListenerSurvives() throws Exception {
        Path spool = Fixtures.newDir("spool");
        start(spool, 0, List.of(), new IngestHarness.Collector());
        // a valid data set start, then random bytes
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        explicitUi(data, 0x0008, 0x0016, "1.2.840.10008.5.1.4.1.1.1.1");
        explicitUi(data, 0x0008, 0x0018, "1.2.3.4.5.6.7");
        byte[] junk = new byte[200_000];
        new Random(42).nextBytes(junk);
        data.write(junk);
        int status = RawStoreScu.store(harness.port(), "RAWSCU", "CXRGATEWAY", "1.2.840.10008.5.1.4.1.1.1.1", "1.2.3.4.5.6.7", data.toByteArray());
        assertEquals(0xC000, status & 0xF000, "Cxxx failure, got " + Integer.toHexString(status));
        assertEquals(0, spooled(spool));
        assertTrue(harness.count("cxr.ingest.instances.rejected", "reason", "CANNOT_UNDERSTAND", "status", "C000")
                + harness.count("cxr.ingest.instances.rejected", "reason", "UID_MISMATCH", "status", "C002") >= 1);

        // not even a PDU: the connection is dropped and counted
        try (Socket s = new Socket("127.0.0.1", harness.port())) {
            s.getOutputStream().write("GET / HTTP/1.1\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            s.setSoTimeout(5000);
            assertEquals(-1, s.getInputStream().read());
        }
        assertEquals(1, harness.awaitCount(1, "cxr.dicom.associations", "result", "rejected", "reason", "MALFORMED"));
        // and the listener still works
        assertEquals(1, successes(storescu("mono1_12bit_window.dcm")));
    }

    @Test
    void associationsAboveTheCapAreRejectedAsTransient() throws Exception {
        start(Fixtures.newDir("spool"), 0, List.of(), new IngestHarness.Collector());
        List<Socket> held = new java.util.ArrayList<>();
        try {
            for (int i = 0; i < 4; i++) { // the harness caps at 4
                Socket s = new Socket("127.0.0.1", harness.port());
                s.setSoTimeout(10_000);
                s.getOutputStream().write(RawStoreScu.associateRq("RAWSCU", "CXRGATEWAY", org.cxrgateway.dicom.DicomUids.DX_FOR_PRESENTATION));
                assertEquals(0x02, s.getInputStream().read(), "A-ASSOCIATE-AC");
                held.add(s);
            }
            Fixtures.Result r = Fixtures.run(null, "echoscu", "-aec", "CXRGATEWAY", "127.0.0.1", "" + harness.port());
            assertNotEquals(0, r.exit());
            assertTrue(r.output().contains("Rejected Transient") && r.output().contains("Local Limit Exceeded"), r.output());
            // the reject reaches the peer before the counter moves: give it a moment
            long counted = System.nanoTime() + 5_000_000_000L;
            while (harness.count("cxr.dicom.associations", "result", "rejected", "reason", "LOCAL_LIMIT_EXCEEDED") < 1
                    && System.nanoTime() < counted) {
                Thread.sleep(20);
            }
            assertEquals(1, harness.awaitCount(1, "cxr.dicom.associations", "result", "rejected", "reason", "LOCAL_LIMIT_EXCEEDED"));
        } finally {
            for (Socket s : held) {
                s.close();
            }
        }
        // slots come back when those connections go away
        long end = System.nanoTime() + 10_000_000_000L;
        Fixtures.Result ok;
        do {
            Thread.sleep(100);
            ok = Fixtures.run(null, "echoscu", "-aec", "CXRGATEWAY", "127.0.0.1", "" + harness.port());
        } while (ok.exit() != 0 && System.nanoTime() < end);
        assertEquals(0, ok.exit(), ok.output());
    }

    @Test
    void studyFailingEveryAttemptIsQuarantinedAcrossRestartsUntilRetried() throws Exception {
        Path spool = Fixtures.newDir("spool");
        IngestHarness.Collector sink = startWithBrokerDown(spool);
        assertEquals(2, successes(storescu("mono2_12bit_rescale_window.dcm", "mono1_12bit_window.dcm")));
        // an unreachable broker counts no attempt: more failures than the bound, still not quarantined
        while (harness.count("cxr.ingest.publish.failures") < 7) {
            Thread.sleep(50);
        }
        assertEquals(List.of(), harness.assembler.quarantined());

        sink.failWith.set(new IOException("disk says no"));
        long end = System.nanoTime() + 20_000_000_000L;
        while (harness.assembler.quarantined().isEmpty() && System.nanoTime() < end) {
            Thread.sleep(50);
        }
        List<StudyAssembler.QuarantinedStudy> q = harness.assembler.quarantined();
        assertEquals(1, q.size());
        assertEquals(studyUid, q.get(0).studyInstanceUid());
        assertEquals(5, q.get(0).attempts(), "the bound of the harness");
        assertTrue(q.get(0).reason().contains("disk says no"), q.get(0).reason());
        double decoded = harness.count("cxr.ingest.images.decoded");
        Thread.sleep(QUIET.toMillis() * 4);
        assertEquals(decoded, harness.count("cxr.ingest.images.decoded"), "not decoded again while quarantined");
        assertEquals(1.0, harness.registry.find("cxr.ingest.studies.quarantined").gauge().value());
        harness.close();

        // restart with a working sink: still quarantined, nothing read or published
        sink.failWith.set(null);
        start(spool, 0, List.of(), sink);
        Thread.sleep(QUIET.toMillis() * 4);
        assertEquals(List.of(studyUid), harness.assembler.quarantined().stream()
                .map(StudyAssembler.QuarantinedStudy::studyInstanceUid).toList());
        assertEquals(0, harness.count("cxr.ingest.images.decoded"));
        assertEquals(0, harness.assembler.pending(), "a quarantined study is not pending");
        assertEquals(0, sink.jobs().size());

        assertEquals(List.of(studyUid), harness.assembler.retry(null));
        assertEquals(1, sink.awaitJobs(1, Duration.ofSeconds(20)).size());
        assertEquals(List.of(), harness.assembler.quarantined());
        assertEquals(2, harness.count("cxr.ingest.images.decoded"));
    }

    @Test
    void restartPublishesUnpublishedStudiesExactlyOnce() throws Exception {
        Path spool = Fixtures.newDir("spool");
        IngestHarness.Collector down = startWithBrokerDown(spool);
        assertEquals(3, successes(storescu("mono2_12bit_rescale_window.dcm", "mono1_12bit_window.dcm", "bad_lateral.dcm")));
        Thread.sleep(QUIET.toMillis() * 3);
        assertEquals(0, down.jobs().size());
        assertTrue(harness.count("cxr.ingest.publish.failures") >= 1);
        harness.close();

        // restart: published once
        IngestHarness.Collector up = new IngestHarness.Collector();
        start(spool, 0, List.of(), up);
        List<StudyJob> jobs = up.awaitJobs(1, Duration.ofSeconds(20));
        assertEquals(1, jobs.size());
        assertEquals(2, jobs.get(0).getImages().size());
        Thread.sleep(QUIET.toMillis() * 3);
        assertEquals(1, up.jobs().size(), "exactly once");
        String jobId = jobs.get(0).getJobId();
        harness.close();

        // restart again: the marker says it is published, nothing is sent
        IngestHarness.Collector third = new IngestHarness.Collector();
        start(spool, 0, List.of(), third);
        Thread.sleep(QUIET.toMillis() * 4);
        assertEquals(0, third.jobs().size());
        harness.close();

        // a crash between the sink's acknowledgement and the marker: the job comes again with the same id,
        // which is what the consumer dedupes on
        Files.list(spool.resolve("studies").resolve(studyUid)).filter(p -> p.getFileName().toString().startsWith("published-"))
                .forEach(p -> p.toFile().delete());
        IngestHarness.Collector again = new IngestHarness.Collector();
        start(spool, 0, List.of(), again);
        assertEquals(jobId, again.awaitJobs(1, Duration.ofSeconds(20)).get(0).getJobId());
    }

    @Test
    void storedFileIsTheReceivedDataSet() throws Exception {
        Path spool = Fixtures.newDir("spool");
        start(spool, 0, List.of(), new IngestHarness.Collector());
        assertEquals(1, successes(storescu("-xs", "jpeg_sv1.dcm")));
        Path stored;
        try (Stream<Path> s = Files.walk(spool.resolve("studies"))) {
            stored = s.filter(p -> p.toString().endsWith(".dcm")).findFirst().orElseThrow();
        }
        // dcmtk reads our Part-10 file and its pixel data is what was sent
        Fixtures.Result dump = Fixtures.runOk(null, "dcmdump", "-q", stored.toString());
        assertTrue(dump.output().contains("JPEGLossless"), dump.output());
        assertEquals(DicomFiles.readWithPixels(fixtures.resolve("jpeg_sv1.dcm")).frame().stored().length,
                DicomFiles.readWithPixels(stored).frame().stored().length);
        assertTrue(java.util.Arrays.equals(DicomFiles.readWithPixels(fixtures.resolve("jpeg_sv1.dcm")).frame().stored(),
                DicomFiles.readWithPixels(stored).frame().stored()));
    }

    private static void explicitUi(ByteArrayOutputStream out, int group, int element, String uid) {
        byte[] v = uid.getBytes(StandardCharsets.US_ASCII);
        int len = v.length + (v.length % 2);
        ByteBuffer b = ByteBuffer.allocate(8 + len).order(ByteOrder.LITTLE_ENDIAN);
        b.putShort((short) group).putShort((short) element).put((byte) 'U').put((byte) 'I').putShort((short) len).put(v);
        out.writeBytes(b.array());
    }
}
