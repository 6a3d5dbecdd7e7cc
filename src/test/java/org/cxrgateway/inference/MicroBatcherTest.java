package org.cxrgateway.inference;

import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.schema.v2.WorkingImage;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The pipelined MicroBatcher (preprocessing on the submitting thread, the engine on the batching thread,
 * Grad-CAM, guided Grad-CAM and the sinks on the result thread) gives, study by study, exactly what the
 * synchronous Scorer gives for the same images, with batches that mix studies and split them; a bad image is
 * the submitter's error. On a tiny package with its guided graph (make_demo_models.py), so guided maps are in.
 */
class MicroBatcherTest {

    static final Path WORK = Path.of("target/test-work/micro-batcher");
    private static ModelPackage pkg;

    @BeforeAll
    static void makePackage() {
        Path out = WORK.resolve("pkg").toAbsolutePath();
        Py.run(300, Py.MAIN.resolve("make_demo_models.py").toString(), "--out", out.toString(),
                "--only", "chest14", "--arch", "tiny", "--embed");
        pkg = ModelPackage.open(out.resolve("chest14"), WORK.resolve("work"));
    }

    private static StudyJob study(String uid, int images, int seed) {
        List<SourceImage> im = new ArrayList<>();
        for (int i = 0; i < images; i++) {
            // sizes differ, so each image's CAM region is its own
            im.add(InferenceWorkerTest.image(uid + "." + i, Fixtures.image(200 + 17 * i, 240, 8, seed + i)));
        }
        return InferenceWorkerTest.job(uid, MessageCodec.SCHEMA_VERSION, im);
    }

    /** The score command's --cams-for-every-label: a Grad-CAM for every finding, the decisions and guided maps unchanged. */
    @Test
    void camsForEveryLabelAddsTheNegativeFindingsMapsOnly() throws Exception {
        try (OrtModel model = new OrtModel(pkg, EngineKind.cpu, 1, null)) {
            List<Scorer.Image> images = List.of(0, 1, 2).stream()
                    .map(i -> { var w = Fixtures.image(200 + 17 * i, 240, 8, 50 + i); return new Scorer.Image(Preprocessor.decode(w), w.getWidth(), w.getHeight()); })
                    .toList();
            var usual = new Scorer(List.of(model), 2).score(images).runs();
            var every = new Scorer(List.of(model), 2, true).score(images).runs();
            int negatives = 0;
            for (int i = 0; i < images.size(); i++) {
                var a = usual.get(i).get(0).getFindings();
                var b = every.get(i).get(0).getFindings();
                assertEquals(a.size(), b.size());
                for (int k = 0; k < a.size(); k++) {
                    assertEquals(a.get(k).getProbability(), b.get(k).getProbability());
                    assertEquals(a.get(k).getPositive(), b.get(k).getPositive());
                    assertEquals(a.get(k).getGuided(), b.get(k).getGuided(), "guided maps: the positives' alone");
                    assertEquals(a.get(k).getPositive(), a.get(k).getActivation() != null, "usually the positives' maps alone");
                    assertNotNull(b.get(k).getActivation(), "every finding's map");
                    if (a.get(k).getPositive()) {
                        assertEquals(a.get(k).getActivation(), b.get(k).getActivation());
                    }
                    negatives += a.get(k).getPositive() ? 0 : 1;
                }
            }
            assertTrue(negatives > 0, "some negative findings to map");
        }
    }

    @Test
    void pipelinedResultsEqualTheSynchronousScorerStudyByStudy() throws Exception {
        try (OrtModel model = new OrtModel(pkg, EngineKind.cpu, 2, null)) {
            model.warmUp(3);
            Scorer reference = new Scorer(List.of(model), 2);
            // image counts 1, 4, 2, 3 at batch 3: batches mix studies and split the 4-image one
            List<StudyJob> jobs = List.of(study("1.2.9.1", 1, 10), study("1.2.9.2", 4, 20), study("1.2.9.3", 2, 30), study("1.2.9.4", 3, 40));
            Map<String, StudyResult> got = new ConcurrentHashMap<>();
            Map<String, String> threads = new ConcurrentHashMap<>();
            Map<String, MicroBatcher.Stages> times = new ConcurrentHashMap<>();
            Map<String, StudyResult> previews = new ConcurrentHashMap<>();
            CountDownLatch done = new CountDownLatch(jobs.size());
            try (MicroBatcher b = new MicroBatcher(new Scorer(List.of(model), 2), 3, Duration.ofMillis(200))) {
                for (StudyJob j : jobs) {
                    b.submit(j, new MicroBatcher.Sink() {
                        @Override
                        public void preview(StudyJob job, StudyResult p) {
                            assertFalse(got.containsKey(job.getJobId()), "the preview comes before the result");
                            assertEquals(null, previews.put(job.getJobId(), p), "one preview per study");
                            // encoded now, as the worker does: the batcher fills in the guided maps afterwards
                            try {
                                previews.put(job.getJobId(), MessageCodec.decodeResult(MessageCodec.encode(p)));
                            } catch (org.cxrgateway.message.PoisonMessageException e) {
                                throw new AssertionError(e);
                            }
                        }

                        @Override
                        public void done(StudyJob job, StudyResult r, MicroBatcher.Stages stages) {
                            assertEquals(null, got.put(job.getJobId(), r), "one result per study");
                            times.put(job.getJobId(), stages);
                            threads.put(job.getJobId(), Thread.currentThread().getName());
                            done.countDown();
                        }

                        @Override
                        public void failed(StudyJob job, Exception e) {
                            throw new AssertionError("study " + job.getJobId() + " failed", e);
                        }
                    });
                }
                assertTrue(done.await(120, TimeUnit.SECONDS), "every study is scored");
            }
            int guided = 0;
            for (StudyJob j : jobs) {
                StudyResult r = got.get(j.getJobId());
                assertEquals("cxr-inference-results", threads.get(j.getJobId()), "post-processing and the sink run off the engine's thread");
                assertEquals(j.getImages().size(), r.getImages().size());
                for (int i = 0; i < j.getImages().size(); i++) {
                    ImageResult ir = r.getImages().get(i);
                    SourceImage src = j.getImages().get(i);
                    assertEquals(src.getSopInstanceUid(), ir.getSopInstanceUid(), "images keep their order");
                    WorkingImage w = src.getImage();
                    var want = reference.score(List.of(new Scorer.Image(Preprocessor.decode(w), w.getWidth(), w.getHeight()))).runs().get(0).get(0);
                    List<Finding> a = want.getFindings(), g = ir.getRuns().get(0).getFindings();
                    assertEquals(a.size(), g.size());
                    for (int k = 0; k < a.size(); k++) {
                        assertEquals(a.get(k).getProbability(), g.get(k).getProbability(), 1e-5, "probability of " + a.get(k).getLabel());
                        assertEquals(a.get(k).getPositive(), g.get(k).getPositive());
                        assertEquals(a.get(k).getActivation() == null, g.get(k).getActivation() == null);
                        if (a.get(k).getActivation() != null) {
                            assertEquals(a.get(k).getActivation().getRegionWidth(), g.get(k).getActivation().getRegionWidth());
                            List<Float> av = a.get(k).getActivation().getValues(), gv = g.get(k).getActivation().getValues();
                            for (int p = 0; p < av.size(); p++) {
                                assertEquals(av.get(p), gv.get(p), 1e-4f * Math.max(1f, Math.abs(av.get(p))), "CAM value " + p);
                            }
                        }
                        assertEquals(a.get(k).getGuided() == null, g.get(k).getGuided() == null, "the same findings get guided maps");
                        if (g.get(k).getGuided() != null) {
                            guided++;
                        }
                    }
                }
            }
            assertTrue(guided > 0, "guided maps were computed on the result thread");
            // each study with guided maps had its preview first: the same scores, the guided maps announced and not
            // there, and from it the same SRs as from the result
            var reports = new org.cxrgateway.report.ReportBuilder(org.cxrgateway.report.ReportSettings.defaults());
            for (StudyJob j : jobs) {
                StudyResult r = got.get(j.getJobId()), p = previews.get(j.getJobId());
                boolean anyGuided = r.getImages().stream().flatMap(i -> i.getRuns().stream()).flatMap(x -> x.getFindings().stream())
                        .anyMatch(f -> f.getGuided() != null);
                assertEquals(anyGuided, p != null, "a preview exactly when guided maps follow, study " + j.getJobId());
                if (p == null) {
                    continue;
                }
                assertTrue(p.getPreview() && !r.getPreview());
                assertEquals(r.getCreatedAtEpochMs(), p.getCreatedAtEpochMs());
                assertEquals(r.getPartIndex(), p.getPartIndex());
                for (int i = 0; i < r.getImages().size(); i++) {
                    List<Finding> fr = r.getImages().get(i).getRuns().get(0).getFindings();
                    List<Finding> fp = p.getImages().get(i).getRuns().get(0).getFindings();
                    for (int k = 0; k < fr.size(); k++) {
                        assertEquals(fr.get(k).getProbability(), fp.get(k).getProbability());
                        assertEquals(fr.get(k).getActivation(), fp.get(k).getActivation());
                        assertNull(fp.get(k).getGuided());
                        assertEquals(fr.get(k).getGuided() != null, fp.get(k).getGuidedFollows(), fr.get(k).getLabel());
                        assertFalse(fr.get(k).getGuidedFollows());
                    }
                }
                var fullSrs = reports.build(r).dicom().stream().filter(o -> o.kind().equals("SR")).toList();
                var previewSrs = reports.stage(p, org.cxrgateway.report.Supersession.NONE).srs();
                assertEquals(fullSrs.size(), previewSrs.size());
                for (int k = 0; k < fullSrs.size(); k++) {
                    assertArrayEquals(fullSrs.get(k).part10(), previewSrs.get(k).part10(), "SR of study " + j.getJobId());
                }
            }
            // the worker's audit line gets each study's stage times: measured, the guided maps within post-processing
            for (MicroBatcher.Stages st : times.values()) {
                assertTrue(st.prepareMs() > 0 && st.postMs() > 0 && st.guidedMs() >= 0 && st.guidedMs() <= st.postMs(), st.toString());
            }
            assertTrue(times.values().stream().anyMatch(st -> st.guidedMs() > 0), "guided time is counted: " + times);
        }
    }

    @Test
    void anImageThatCannotBeDecodedIsTheSubmittersError() throws Exception {
        try (OrtModel model = new OrtModel(pkg, EngineKind.cpu, 1, null);
             MicroBatcher b = new MicroBatcher(new Scorer(List.of(model)), 2, Duration.ofMillis(10))) {
            StudyJob j = study("1.2.9.9", 1, 1);
            WorkingImage bad = WorkingImage.newBuilder(j.getImages().get(0).getImage()).setWidth(5000).build();
            StudyJob broken = StudyJob.newBuilder(j).setImages(List.of(SourceImage.newBuilder(j.getImages().get(0)).setImage(bad).build())).build();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.submit(broken));
            assertTrue(e.getMessage().contains("1.2.9.9.0"), e.getMessage());
            assertNotNull(b.score(j), "the batcher still scores after a refused submission");
        }
    }

    /**
     * cxr.inference.max-wait counts from when the first image of a batch was queued: an image that queued while the
     * engine was held up has waited already, and runs as soon as the engine is free instead of waiting max-wait
     * again for company. The engine is held up by the result stage: a sink that blocks stops the result thread, and
     * the batching thread then waits once RESULTS_QUEUED outputs are unfinished.
     */
    @Test
    void anImageThatQueuedWhileTheEngineWasHeldUpDoesNotWaitAgain() throws Exception {
        Duration maxWait = Duration.ofSeconds(3);
        CountDownLatch gate = new CountDownLatch(1), lone = new CountDownLatch(1);
        long[] loneDoneAt = new long[1];
        try (OrtModel model = new OrtModel(pkg, EngineKind.cpu, 1, null);
             MicroBatcher b = new MicroBatcher(new Scorer(List.of(model)), 2, maxWait)) {
            model.warmUp(1);
            List<java.util.concurrent.CompletableFuture<StudyResult>> busy = new ArrayList<>();
            b.submit(study("1.2.9.20", 2, 50), new MicroBatcher.Sink() {
                @Override
                public void done(StudyJob job, StudyResult r, MicroBatcher.Stages stages) {
                    try {
                        gate.await(); // holds the result thread
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }

                @Override
                public void failed(StudyJob job, Exception e) {
                    throw new AssertionError(e);
                }
            });
            // 10 more images at batch 2: at least 5 batches, more than the result queue and the held result thread take
            for (int i = 0; i < 5; i++) {
                busy.add(b.submit(study("1.2.9.2" + (i + 1), 2, 60 + 10 * i)));
            }
            b.submit(study("1.2.9.29", 1, 120), new MicroBatcher.Sink() {
                @Override
                public void done(StudyJob job, StudyResult r, MicroBatcher.Stages stages) {
                    loneDoneAt[0] = System.nanoTime();
                    lone.countDown();
                }

                @Override
                public void failed(StudyJob job, Exception e) {
                    throw new AssertionError(e);
                }
            });
            Thread.sleep(maxWait.toMillis() + 500); // the lone image has now waited longer than max-wait
            assertEquals(1, lone.getCount(), "the lone image is still queued behind the held-up engine");
            long released = System.nanoTime();
            gate.countDown();
            assertTrue(lone.await(60, TimeUnit.SECONDS), "the lone image is scored");
            double waitedMs = (loneDoneAt[0] - released) / 1e6;
            // the batches before it take tens of ms; waiting max-wait again would take 3000 ms more
            assertTrue(waitedMs < maxWait.toMillis() * 2 / 3, "scored " + waitedMs + " ms after the engine was free");
            for (var f : busy) {
                assertNotNull(f.get(60, TimeUnit.SECONDS));
            }
        }
    }
}
