package org.cxrgateway.delivery;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.OrthancPeer;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Delivery to a real Orthanc: objects land in the source study, validate, resolve, and are never duplicated. */
class PacsDeliveryTest {

    static final ObjectMapper JSON = new ObjectMapper();
    OrthancPeer orthanc;
    Path work;

    @BeforeEach
    void start() throws Exception {
        Files.createDirectories(Path.of("target"));
        work = Files.createTempDirectory(Path.of("target"), "pacs-delivery");
        orthanc = new OrthancPeer(work, "CXRGATEWAY", 11112);
        orthanc.start();
    }

    @AfterEach
    void stop() throws Exception {
        orthanc.close();
    }

    void storeSource(TestResults t) throws Exception {
        Path dx = work.resolve("source-" + t.sopUid + ".dcm");
        Tools.Result made = Tools.run("/usr/bin/python3", "src/test/resources/make_source_dx.py", dx.toString(),
                t.studyUid, t.seriesUid, t.sopUid, t.patientId);
        assertEquals(0, made.exit(), made.out());
        Tools.Result sent = Tools.run("storescu", "-aet", "CXRGATEWAY", "-aec", "ORTHANC", "127.0.0.1",
                Integer.toString(orthanc.dicomPort), dx.toString());
        assertEquals(0, sent.exit(), sent.out());
    }

    JsonNode instancesOf(String studyUid) throws Exception {
        return JSON.readTree(orthanc.post("/tools/find", """
                {"Level":"Instance","Expand":true,"Query":{"StudyInstanceUID":"%s"}}""".formatted(studyUid)));
    }

    Set<String> sopUids(JsonNode instances) {
        Set<String> s = new TreeSet<>();
        instances.forEach(i -> s.add(i.get("MainDicomTags").get("SOPInstanceUID").asText()));
        return s;
    }

    PacsDestination pacs(Path state) {
        return new PacsDestination("orthanc", "127.0.0.1", orthanc.dicomPort, "ORTHANC", "CXRGATEWAY", state.resolve("spool"));
    }

    DeliveryService service(Path state, int attempts) {
        return service(state, attempts, pacs(state));
    }

    DeliveryService service(Path state, int attempts, Destination destination) {
        return new DeliveryService(new ReportBuilder(ReportSettings.defaults()), List.of(destination),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(attempts, Duration.ofMillis(50), Duration.ofMillis(200)),
                new PendingStore(state.resolve("pending")), new SimpleMeterRegistry());
    }

    static List<String> srUids(ReportSet set) {
        return set.dicom().stream().filter(o -> o.kind().equals("SR")).map(ReportSet.DicomObject::sopInstanceUid).toList();
    }

    @Test
    void srAndScLandInTheSourceStudyValidateAndAreNotDuplicated() throws Exception {
        TestResults t = TestResults.study("30");
        storeSource(t);
        StudyResult result = t.build();
        ReportSet expected = new ReportBuilder(ReportSettings.defaults()).build(result);
        try (DeliveryService svc = service(Files.createTempDirectory(work, "state"), 3)) {
            svc.submit(result).get(60, TimeUnit.SECONDS);
            assertEquals(0, svc.deadLetteredCount());
        }
        JsonNode instances = instancesOf(t.studyUid);
        // the explanation objects travel too: a Parametric Map and a colour and a guided SC per positive finding
        assertEquals(2, expected.dicom().stream().filter(o -> o.kind().equals("PM")).count());
        assertEquals(4, expected.dicom().stream().filter(o -> o.kind().equals("SC")).count());
        Set<String> want = new TreeSet<>();
        want.add(t.sopUid);
        expected.dicom().forEach(o -> want.add(o.sopInstanceUid()));
        assertEquals(want, sopUids(instances));
        JsonNode studies = JSON.readTree(orthanc.get("/studies?expand"));
        assertEquals(1, studies.size(), "SR and SC joined the source study");
        assertEquals(t.patientId, studies.get(0).get("PatientMainDicomTags").get("PatientID").asText());

        int parametricMaps = 0;
        for (JsonNode i : instances) {
            String sop = i.get("MainDicomTags").get("SOPInstanceUID").asText();
            if (sop.equals(t.sopUid)) {
                continue;
            }
            Path f = work.resolve("from-orthanc-" + sop + ".dcm");
            Files.write(f, orthanc.getBytes("/instances/" + i.get("ID").asText() + "/file"));
            assertEquals(List.of(), Tools.dciodvfyErrors(f), "dciodvfy " + sop);
            JsonNode tags = JSON.readTree(orthanc.get("/instances/" + i.get("ID").asText() + "/simplified-tags"));
            assertEquals(t.patientId, tags.get("PatientID").asText());
            if (tags.get("SOPClassUID").asText().equals("1.2.840.10008.5.1.4.1.1.30")) {
                parametricMaps++;
            }
            if (tags.get("Modality").asText().equals("SR")) {
                Tools.Result dump = Tools.run("dsrdump", "+Pu", f.toString());
                assertEquals(0, dump.exit(), dump.out());
                // every referenced instance resolves in the PACS
                List<String> refs = new ArrayList<>();
                for (String line : Tools.run("dcmdump", "+P", "0008,1155", f.toString()).out().split("\n")) {
                    int a = line.indexOf('[');
                    int b = line.indexOf(']');
                    if (a >= 0 && b > a) {
                        refs.add(line.substring(a + 1, b));
                    }
                }
                assertTrue(!refs.isEmpty());
                for (String ref : refs) {
                    assertEquals(1, JSON.readTree(orthanc.post("/tools/lookup", ref)).size(), "reference " + ref);
                }
            }
        }

        assertEquals(2, parametricMaps, "Orthanc stores the Parametric Maps");

        // a second delivery from a fresh process state (no ledger) overwrites nothing new: same SOP Instance UIDs
        try (DeliveryService again = service(Files.createTempDirectory(work, "state2"), 3)) {
            again.submit(result).get(60, TimeUnit.SECONDS);
            assertEquals(0, again.deadLetteredCount());
        }
        assertEquals(want, sopUids(instancesOf(t.studyUid)));
        assertEquals(want.size(), JSON.readTree(orthanc.get("/statistics")).get("CountInstances").asInt());
    }

    /** A PACS destination that notes what each deliver call was given and what the ledger held at its start. */
    static final class Recording extends ForwardingDestination {
        final List<List<String>> kindsPerCall = new ArrayList<>();
        final List<Set<String>> ackedAtStart = new ArrayList<>();
        final List<Boolean> bundlePerCall = new ArrayList<>();

        Recording(PacsDestination pacs) {
            super(pacs);
        }

        @Override
        public void deliver(ReportSet set, DeliveryLedger.View ledger) throws DeliveryException {
            kindsPerCall.add(set.dicom().stream().map(ReportSet.DicomObject::kind).toList());
            Set<String> acked = new TreeSet<>();
            set.dicom().forEach(o -> {
                if (ledger.acked(o.sopInstanceUid())) {
                    acked.add(o.sopInstanceUid());
                }
            });
            ackedAtStart.add(acked);
            bundlePerCall.add(set.fhirBundleJson() != null);
            target.deliver(set, ledger);
        }
    }

    @Test
    void theSrsReachThePacsAheadOfThePicturesAndNothingTwice() throws Exception {
        TestResults t = TestResults.study("32");
        storeSource(t);
        StudyResult result = t.build();
        ReportSet expected = new ReportBuilder(ReportSettings.defaults()).build(result);
        List<String> srs = srUids(expected);
        assertTrue(!srs.isEmpty() && expected.dicom().size() > srs.size(), "the study has SRs and pictures");
        Path state = Files.createTempDirectory(work, "state");
        Recording rec = new Recording(pacs(state));
        try (DeliveryService svc = service(state, 3, rec)) {
            svc.submit(result).get(60, TimeUnit.SECONDS);
            assertEquals(0, svc.deadLetteredCount());
        }
        // first the SRs alone (rendered before the pictures), then the whole set, of which the SRs are acknowledged
        // already and so not sent again
        assertEquals(2, rec.kindsPerCall.size());
        assertEquals(srs.stream().map(x -> "SR").toList(), rec.kindsPerCall.get(0));
        assertEquals(false, rec.bundlePerCall.get(0));
        assertEquals(expected.dicom().stream().map(ReportSet.DicomObject::kind).toList(), rec.kindsPerCall.get(1));
        assertEquals(Set.of(), rec.ackedAtStart.get(0));
        assertEquals(new TreeSet<>(srs), rec.ackedAtStart.get(1));
        Set<String> want = new TreeSet<>();
        want.add(t.sopUid);
        expected.dicom().forEach(o -> want.add(o.sopInstanceUid()));
        assertEquals(want, sopUids(instancesOf(t.studyUid)));
        assertEquals(want.size(), JSON.readTree(orthanc.get("/statistics")).get("CountInstances").asInt());
    }

    /**
     * A worker's preview (the result before its guided maps) puts the SRs in the PACS before the full result is
     * even handed over; the full result then sends the pictures and nothing twice.
     */
    @Test
    void aPreviewSendsTheSrsBeforeItsFullResultArrives() throws Exception {
        TestResults t = TestResults.study("33");
        storeSource(t);
        StudyResult result = t.build();
        ReportSet expected = new ReportBuilder(ReportSettings.defaults()).build(result);
        List<String> srs = srUids(expected);
        Path state = Files.createTempDirectory(work, "state");
        Recording rec = new Recording(pacs(state));
        try (DeliveryService svc = service(state, 3, rec)) {
            svc.preview(TestResults.preview(result));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (sopUids(instancesOf(t.studyUid)).size() < 1 + srs.size() && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            Set<String> early = new TreeSet<>(srs);
            early.add(t.sopUid);
            assertEquals(early, sopUids(instancesOf(t.studyUid)), "the SRs alone, before the full result is handed over");
            svc.submit(result).get(60, TimeUnit.SECONDS);
            assertEquals(0, svc.deadLetteredCount());
        }
        // the preview's SRs; the full result's SRs-first send, all acknowledged already; then the whole set
        assertEquals(3, rec.kindsPerCall.size());
        assertEquals(srs.stream().map(x -> "SR").toList(), rec.kindsPerCall.get(0));
        assertEquals(Set.of(), rec.ackedAtStart.get(0));
        assertEquals(new TreeSet<>(srs), rec.ackedAtStart.get(1));
        assertEquals(new TreeSet<>(srs), rec.ackedAtStart.get(2));
        assertEquals(expected.dicom().stream().map(ReportSet.DicomObject::kind).toList(), rec.kindsPerCall.get(2));
        Set<String> want = new TreeSet<>();
        want.add(t.sopUid);
        expected.dicom().forEach(o -> want.add(o.sopInstanceUid()));
        assertEquals(want, sopUids(instancesOf(t.studyUid)));
        assertEquals(want.size(), JSON.readTree(orthanc.get("/statistics")).get("CountInstances").asInt());
    }

    /** Part i of 2 of a two-image result, as a worker publishes a job split one image per part. */
    static StudyResult part(StudyResult whole, int i) {
        return StudyResult.newBuilder(whole).setPartIndex(i).setPartCount(2).setImages(List.of(whole.getImages().get(i))).build();
    }

    /** The parts of a multi-part preview are gathered (in memory) and their SRs sent once all are in, before the result's. */
    @Test
    void aMultiPartPreviewSendsItsSrsOnceAllItsPartsAreIn() throws Exception {
        TestResults t = TestResults.study("34");
        storeSource(t);
        StudyResult whole = TestResults.lateInstance(t.build(), 0);
        ReportSet expected = new ReportBuilder(ReportSettings.defaults()).build(whole);
        List<String> srs = srUids(expected);
        Path state = Files.createTempDirectory(work, "state");
        Recording rec = new Recording(pacs(state));
        try (DeliveryService svc = service(state, 3, rec)) {
            svc.preview(TestResults.preview(part(whole, 0)));
            Thread.sleep(300);
            assertEquals(0, rec.kindsPerCall.size(), "one part of two: nothing sent yet");
            svc.preview(TestResults.preview(part(whole, 1)));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (rec.kindsPerCall.isEmpty() && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            for (int i = 0; i < 2; i++) {
                byte[] bytes = org.cxrgateway.message.MessageCodec.encode(part(whole, i));
                svc.accept(bytes, org.cxrgateway.message.MessageCodec.decodeResult(bytes)).get(60, TimeUnit.SECONDS);
            }
            assertEquals(0, svc.deadLetteredCount());
        }
        assertEquals(srs.stream().map(x -> "SR").toList(), rec.kindsPerCall.get(0), "the merged preview's SRs first");
        assertEquals(new TreeSet<>(srs), rec.ackedAtStart.get(rec.kindsPerCall.size() - 1), "not sent again");
        Set<String> want = new TreeSet<>();
        want.add(t.sopUid);
        expected.dicom().forEach(o -> want.add(o.sopInstanceUid()));
        assertEquals(want, sopUids(instancesOf(t.studyUid)));
        assertEquals(want.size(), JSON.readTree(orthanc.get("/statistics")).get("CountInstances").asInt());
    }

    @Test
    void orthancDownIsRetriedDeadLetteredAndReplayedOnce() throws Exception {
        TestResults t = TestResults.study("31");
        storeSource(t);
        Path state = Files.createTempDirectory(work, "state");
        try (DeliveryService svc = service(state, 3)) {
            orthanc.stop();
            svc.submit(t.build()).get(60, TimeUnit.SECONDS);
            assertEquals(1, svc.deadLetteredCount());
            FileDeadLetterStore dl = new FileDeadLetterStore(state.resolve("dead-letters"));
            assertEquals(1, dl.list().size());
            assertEquals("pacs-orthanc", dl.list().get(0).destination());

            orthanc.start();
            assertEquals(1, svc.replay("pacs-orthanc").get(60, TimeUnit.SECONDS));
            assertEquals(0, dl.list().size());
            assertEquals(1, svc.deliveredCount());
            // replaying again finds nothing; the objects are there once
            assertEquals(0, svc.replay(null).get(60, TimeUnit.SECONDS));
        }
        assertEquals(8, sopUids(instancesOf(t.studyUid)).size(),
                "source + SR + 2 Grad-CAM SC + 2 guided Grad-CAM SC + 2 Parametric Maps");
    }
}
