package org.cxrgateway.inference;

import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;
import org.jboss.logging.Logger;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * Dynamic micro-batching across studies: images of any study wait at most maxWait after the first
 * image of a batch arrives (and not at all when the engine was idle for maxWait), and a batch holds at most
 * maxBatch images. When the last image of a study is scored, its StudyResult goes to the study's sink.
 *
 * <p>A pipeline of three, so that the engine runs batch after batch without waiting for host work:
 * the submitting thread decodes and preprocesses (Scorer.prepare); the batching thread only runs the
 * engine (Scorer.forward; it owns the models' sessions); the result thread post-processes (Grad-CAM, guided
 * Grad-CAM: Scorer.scores, then Scorer.guided) and calls the sinks, which encode and publish; between the two
 * steps a study's preview goes to its sink, so that its SRs need not wait for the guided maps. At most {@value #RESULTS_QUEUED}
 * engine outputs wait for the result thread; beyond that the batching thread waits, which bounds memory
 * when post-processing is the slower stage (guided Grad-CAM on a small machine).
 */
public final class MicroBatcher implements AutoCloseable {

    private static final Logger LOG = Logger.getLogger(MicroBatcher.class);

    /**
     * Receives each study's outcome: done on the result thread (or the submitting thread for a study without
     * images), failed on the thread whose step failed; must not block for long.
     */
    public interface Sink {
        void done(StudyJob job, StudyResult result, Stages stages);

        /**
         * Before done, on the result thread, when the study's guided Grad-CAMs are still to be made: the result
         * without them (StudyResult.preview, Finding.guidedFollows where one will come), for an early publish.
         * Same jobId, part and createdAt as the result done gets. Not called when no guided map follows.
         */
        default void preview(StudyJob job, StudyResult preview) {
        }

        void failed(StudyJob job, Exception error);
    }

    /**
     * Where a study's scoring time went, in ms, for the worker's audit line: decoding and preprocessing its images
     * (prepareMs), post-processing (postMs: activation, thresholds, Grad-CAM and guided Grad-CAM; a batch shared
     * with other studies counts by image share, as the engine time does) and within it the guided Grad-CAMs
     * (guidedMs).
     */
    public record Stages(double prepareMs, double postMs, double guidedMs) {
    }

    private static final class Study {
        final StudyJob job;
        final Sink sink;
        final ImageResult[] results;
        int remaining;
        /** The images' runs before their guided maps, copied for the preview; see Sink.preview. */
        final ImageResult[] previews;
        int previewRemaining;
        boolean guidedFollows;
        /** Set when the first of the preview and the result is made, so that both carry the same time. */
        long createdAtEpochMs;
        double engineMs;
        double prepareMs;
        double postMs;
        double guidedMs;
        int batchSize;
        /** Set by the batching or the result thread (markFailed), read by both. */
        volatile boolean failed;

        Study(StudyJob job, Sink sink) {
            this.job = job;
            this.sink = sink;
            this.results = new ImageResult[job.getImages().size()];
            this.remaining = results.length;
            this.previews = new ImageResult[results.length];
            this.previewRemaining = results.length;
        }

        /** True for the one caller that marks the study failed, so that its sink hears of it once. */
        synchronized boolean markFailed() {
            if (failed) {
                return false;
            }
            failed = true;
            return true;
        }
    }

    /** One image in the queue; queuedNanos: when it was queued, from which its wait for a fuller batch counts. */
    private record Item(Study study, int index, Scorer.Prepared image, long queuedNanos) {
    }

    private static final Item STOP = new Item(null, -1, null, 0);

    /** Engine outputs waiting for the result thread; see the class comment. */
    static final int RESULTS_QUEUED = 2;

    private record Done(List<Item> batch, Scorer.Forward forward) {
    }

    private static final Done RESULTS_STOP = new Done(List.of(), null);

    private final Scorer scorer;
    /** {@link Scorer#guidedMapSide()}, asked once: 0 when the scorer makes no guided maps. */
    private final int guidedMapSide;
    private final int maxBatch;
    private final long maxWaitNanos;
    private final BlockingQueue<Item> queue = new LinkedBlockingQueue<>();
    private final Thread thread;
    private final BlockingQueue<Done> results = new java.util.concurrent.ArrayBlockingQueue<>(RESULTS_QUEUED);
    private final Thread resultThread;
    private volatile boolean running = true;
    /** When the last batch ended (batching thread only); far in the past at start, so the first batch runs at once. */
    private long lastBatchEndNanos = System.nanoTime() - Long.MAX_VALUE / 2;

    public MicroBatcher(Scorer scorer, int maxBatch, Duration maxWait) {
        if (maxBatch < 1) {
            throw new IllegalArgumentException("cxr.inference.max-batch must be >= 1, was " + maxBatch);
        }
        this.scorer = scorer;
        this.guidedMapSide = scorer.guidedMapSide();
        this.maxBatch = maxBatch;
        this.maxWaitNanos = maxWait.toNanos();
        this.thread = new Thread(this::loop, "cxr-inference-batcher");
        this.thread.setDaemon(true);
        this.resultThread = new Thread(this::results, "cxr-inference-results");
        this.resultThread.setDaemon(true);
        this.resultThread.start();
        this.thread.start();
    }

    /**
     * Each submitting thread's decoded grey image, where a model's preprocessing needed the whole image decoded
     * (GrayImage.pixels), reused for the next image of the same size (prepare keeps none of it): a site's images
     * mostly share a few sizes. Kept only up to MAX_REUSED_GRAY pixels (16 MB), so that one
     * huge image does not stay in memory.
     */
    private static final ThreadLocal<float[]> GRAY = new ThreadLocal<>();
    private static final int MAX_REUSED_GRAY = 4 << 20;

    /**
     * Decodes and preprocesses the job's images on the caller's thread (so a malformed image is the caller's
     * poison message, not a failed batch, and the work overlaps the engine's) and queues them.
     *
     * @throws IllegalArgumentException when an image cannot be decoded or does not fit a model
     */
    public void submit(StudyJob job, Sink sink) {
        List<Scorer.Prepared> decoded = new ArrayList<>();
        long prepareStart = System.nanoTime();
        for (SourceImage s : job.getImages()) {
            try {
                GrayImage gray = GrayImage.of(s.getImage(), GRAY.get());
                decoded.add(scorer.prepare(new Scorer.Image(gray)));
                float[] whole = gray.decoded(); // null where every model read the pixel bytes' rows instead
                if (whole != null && whole.length <= MAX_REUSED_GRAY) {
                    GRAY.set(whole);
                }
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("image " + s.getSopInstanceUid() + ": " + e.getMessage(), e);
            }
        }
        Study st = new Study(job, sink);
        st.prepareMs = (System.nanoTime() - prepareStart) / 1e6;
        if (decoded.isEmpty()) {
            sink.done(job, result(st), stages(st));
            return;
        }
        long queued = System.nanoTime();
        for (int i = 0; i < decoded.size(); i++) {
            queue.add(new Item(st, i, decoded.get(i), queued));
        }
    }

    /**
     * Submits a study through the same batching path; the future completes with its result.
     *
     * @throws IllegalArgumentException when an image cannot be decoded or does not fit a model
     */
    public CompletableFuture<StudyResult> submit(StudyJob job) {
        CompletableFuture<StudyResult> f = new CompletableFuture<>();
        submit(job, new Sink() {
            @Override
            public void done(StudyJob j, StudyResult r, Stages stages) {
                f.complete(r);
            }

            @Override
            public void failed(StudyJob j, Exception e) {
                f.completeExceptionally(e);
            }
        });
        return f;
    }

    /** Scores one study synchronously (offline scoring). */
    public StudyResult score(StudyJob job) throws Exception {
        return submit(job).get();
    }

    /** The side of the largest guided map a result can carry (for a preview's size bound), 0 when none. */
    public int guidedMapSide() {
        return guidedMapSide;
    }

    /** Images queued and not yet in a batch. */
    public int queued() {
        return queue.size();
    }

    private void loop() {
        List<Item> batch = new ArrayList<>(maxBatch);
        while (running) {
            try {
                Item first = queue.take();
                if (first == STOP) {
                    return;
                }
                batch.add(first);
                // waiting for a fuller batch pays only while images keep coming: at idle (the engine has had nothing
                // to do for maxWait) it would add maxWait to every study's latency, so what is queued runs at once;
                // under load, images that arrive while a batch runs make the next one. The wait counts from when the
                // first image was queued, not from now: one that queued while the engine ran has waited already, and
                // waiting maxWait again would hold a partial batch for nothing (the last 7 of a 64-image burst at
                // batch 8 stood 50 ms idle, 1.9% of the burst)
                long now = System.nanoTime();
                long deadline = now - lastBatchEndNanos < maxWaitNanos ? first.queuedNanos() + maxWaitNanos : now;
                while (batch.size() < maxBatch) {
                    long left = deadline - System.nanoTime();
                    Item next = left > 0 ? queue.poll(left, TimeUnit.NANOSECONDS) : queue.poll();
                    if (next == null) {
                        break;
                    }
                    if (next == STOP) {
                        running = false;
                        break;
                    }
                    batch.add(next);
                }
                process(batch);
                lastBatchEndNanos = System.nanoTime();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (RuntimeException | Error e) {
                LOG.error("batching loop error", e);
            } finally {
                batch.clear();
            }
        }
    }

    /** On the batching thread: the engine, then the outputs to the result thread. */
    private void process(List<Item> batch) throws InterruptedException {
        List<Item> live = batch.stream().filter(it -> !it.study().failed).toList();
        if (live.isEmpty()) {
            return;
        }
        Scorer.Forward f;
        try {
            f = scorer.forward(live.stream().map(Item::image).toList());
        } catch (RuntimeException e) {
            fail(live, e);
            return;
        }
        results.put(new Done(live, f)); // waits while RESULTS_QUEUED outputs are unfinished
    }

    private static void fail(List<Item> live, Exception e) {
        Map<Study, Boolean> seen = new IdentityHashMap<>();
        for (Item it : live) {
            if (seen.put(it.study(), Boolean.TRUE) == null && it.study().markFailed()) {
                it.study().sink.failed(it.study().job, e);
            }
        }
    }

    /** The result thread: post-processing and the sinks, batch after batch, in engine order. */
    private void results() {
        while (true) {
            Done d;
            try {
                d = results.take();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
            if (d == RESULTS_STOP) {
                return;
            }
            try {
                finish(d.batch(), d.forward());
            } catch (RuntimeException | Error e) {
                LOG.error("result thread error", e);
            }
        }
    }

    private void finish(List<Item> live, Scorer.Forward f) {
        Scorer.BatchResult r;
        long postStart = System.nanoTime();
        try {
            Scorer.Scores scores = scorer.scores(f);
            if (guidedMapSide > 0) { // without guided maps the result follows at once: no preview, no copies
                previews(live, scores);
            }
            r = scorer.guided(scores);
        } catch (RuntimeException e) {
            fail(live, e);
            return;
        }
        double share = r.engineMs() / live.size();
        double postShare = (System.nanoTime() - postStart) / 1e6 / live.size();
        double guidedShare = r.guidedMs() / live.size();
        for (int i = 0; i < live.size(); i++) {
            Item it = live.get(i);
            Study st = it.study();
            if (st.failed) { // an earlier batch of the study failed after this one went to the engine
                continue;
            }
            st.results[it.index()] = imageResult(st.job.getImages().get(it.index()), r.runs().get(i));
            st.engineMs += share;
            st.postMs += postShare;
            st.guidedMs += guidedShare;
            st.batchSize = Math.max(st.batchSize, live.size());
            if (--st.remaining == 0) {
                try {
                    st.sink.done(st.job, result(st), stages(st));
                } catch (RuntimeException e) {
                    LOG.error("result sink failed", e);
                }
            }
        }
    }

    /**
     * Hands each study whose images are all scored, and some of whose guided maps are still to come, its preview:
     * copies of the runs, as guided() fills in the originals afterwards.
     */
    private static void previews(List<Item> live, Scorer.Scores scores) {
        for (int i = 0; i < live.size(); i++) {
            Item it = live.get(i);
            Study st = it.study();
            if (st.failed) {
                continue;
            }
            st.previews[it.index()] = imageResult(st.job.getImages().get(it.index()),
                    scores.runs().get(i).stream().map(run -> ModelRun.newBuilder(run).build()).toList());
            st.guidedFollows |= scores.guidedFollows(i);
            if (--st.previewRemaining == 0 && st.guidedFollows) {
                try {
                    st.sink.preview(st.job, result(st, st.previews, true));
                } catch (RuntimeException e) {
                    LOG.error("result sink failed on a preview", e);
                }
            }
        }
    }

    private static ImageResult imageResult(SourceImage src, List<ModelRun> runs) {
        return ImageResult.newBuilder()
                .setSopInstanceUid(src.getSopInstanceUid())
                .setSopClassUid(src.getSopClassUid())
                .setSeriesInstanceUid(src.getSeriesInstanceUid())
                .setImage(src.getImage())
                .setRuns(runs)
                .build();
    }

    private static Stages stages(Study st) {
        return new Stages(st.prepareMs, st.postMs, st.guidedMs);
    }

    private static StudyResult result(Study st) {
        return result(st, st.results, false);
    }

    private static StudyResult result(Study st, ImageResult[] images, boolean preview) {
        if (st.createdAtEpochMs == 0) {
            st.createdAtEpochMs = System.currentTimeMillis();
        }
        return StudyResult.newBuilder()
                .setSchemaVersion(org.cxrgateway.message.MessageCodec.SCHEMA_VERSION)
                .setJobId(st.job.getJobId())
                .setPartIndex(st.job.getPartIndex())
                .setPartCount(st.job.getPartCount())
                .setRevision(st.job.getRevision())
                .setCreatedAtEpochMs(st.createdAtEpochMs)
                .setReceivedAtEpochMs(st.job.getReceivedAtEpochMs())
                .setStudy(st.job.getStudy())
                .setImages(Arrays.asList(images))
                .setInferenceMs(st.engineMs)
                .setBatchSize(st.batchSize)
                .setPreview(preview)
                .setSkipped(st.job.getSkipped())
                .build();
    }

    @Override
    public void close() {
        running = false;
        queue.add(STOP);
        try {
            thread.join(5000);
            // after the batching thread, so that its last outputs are finished first
            if (!results.offer(RESULTS_STOP, 5, TimeUnit.SECONDS)) {
                resultThread.interrupt();
            }
            resultThread.join(5000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
