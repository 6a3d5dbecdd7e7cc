package org.cxrgateway.delivery;

import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.message.StudyParts;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Delivery assembles a multi-part result durably: parts are held on disk, a service that stops with a study half
 * assembled (its successor starts from the same state directory) loses nothing, a redelivered part changes
 * nothing, and the last part yields one SR per model listing every image of the study, delivered once.
 */
class PartAssemblyTest {

    static final int IMAGES = 5;

    /** A study of IMAGES images (each a TestResults image with its own SOP Instance UID). */
    static StudyResult wholeStudy(String suffix) {
        TestResults t = TestResults.study(suffix);
        List<ImageResult> images = new ArrayList<>();
        StudyResult first = null;
        for (int i = 0; i < IMAGES; i++) {
            t.sopUid = t.studyUid + ".1." + (i + 1);
            StudyResult r = t.build();
            first = first == null ? r : first;
            images.add(r.getImages().get(0));
        }
        return StudyResult.newBuilder(first).setImages(images).build();
    }

    static List<StudyResult> parts(StudyResult whole) {
        List<StudyResult> parts = new ArrayList<>();
        for (int i = 0; i < IMAGES; i++) {
            parts.add(StudyResult.newBuilder(whole).setPartIndex(i).setPartCount(IMAGES)
                    .setImages(List.of(whole.getImages().get(i))).build());
        }
        return parts;
    }

    static DeliveryService service(Path state) {
        return new DeliveryService(new ReportBuilder(ReportSettings.defaults()), List.of(new OutboxDestination(state.resolve("outbox"))),
                new DeliveryLedger(state.resolve("ledger")), new FileDeadLetterStore(state.resolve("dead-letters")),
                new RetryPolicy(3, Duration.ofMillis(10), Duration.ofMillis(50)), new PendingStore(state.resolve("pending")),
                new SimpleMeterRegistry());
    }

    static long files(Path dir) throws Exception {
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).count();
        }
    }

    @Test
    void aHalfAssembledStudySurvivesARestartAndIsDeliveredOnceWithOneSrOverAllImages() throws Exception {
        Path state = Files.createTempDirectory(Path.of("target"), "part-assembly");
        StudyResult whole = wholeStudy("4242");
        List<StudyResult> parts = parts(whole);
        Path study = state.resolve("outbox").resolve(DeliveryLedger.safe(whole.getStudy().getStudyInstanceUid()));

        try (DeliveryService first = service(state)) {
            first.resume();
            for (int i : new int[]{3, 0, 1}) {
                byte[] bytes = MessageCodec.encode(parts.get(i));
                first.accept(bytes, MessageCodec.decodeResult(bytes)).get(10, TimeUnit.SECONDS);
            }
            assertFalse(Files.exists(study), "nothing is delivered before every part is in");
            assertEquals(3, files(state.resolve("parts")), "the parts are held on disk");
        }
        // the successor (same state directory, as after kill -9 and restart): part 0 redelivered, then the rest
        try (DeliveryService second = service(state)) {
            second.resume();
            List<java.util.concurrent.CompletableFuture<Void>> all = new ArrayList<>();
            for (int i : new int[]{0, 4, 2}) {
                byte[] bytes = MessageCodec.encode(parts.get(i));
                all.add(second.accept(bytes, MessageCodec.decodeResult(bytes)));
            }
            for (var f : all) {
                f.get(60, TimeUnit.SECONDS);
            }
            assertEquals(1, second.deliveredCount(), "one delivery for the whole study");
        }
        ReportSet expected = new ReportBuilder(ReportSettings.defaults()).build(StudyParts.merge(parts));
        List<String> delivered;
        try (Stream<Path> s = Files.list(study)) {
            delivered = s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".dcm")).sorted().toList();
        }
        assertEquals(expected.dicom().stream().map(o -> o.kind() + "-" + o.sopInstanceUid() + ".dcm").sorted().toList(), delivered);
        List<Path> srs = delivered.stream().filter(n -> n.startsWith("SR-")).map(study::resolve).toList();
        assertEquals(1, srs.size(), "one SR per model");
        Tools.Result dump = Tools.run("dsrdump", "+Pu", srs.get(0).toString());
        for (ImageResult img : whole.getImages()) {
            assertTrue(dump.out().contains(img.getSopInstanceUid()), "the SR lists image " + img.getSopInstanceUid());
        }
        assertEquals(0, files(state.resolve("parts")), "parts forgotten once the study is handed over");
        assertEquals(0, files(state.resolve("pending")), "nothing left pending");
    }
}
