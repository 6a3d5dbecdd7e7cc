package org.cxrgateway.ingest;

import org.cxrgateway.Audit;

import java.io.Closeable;
import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import org.cxrgateway.schema.v2.SkippedInstance;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyJob;
import org.jboss.logging.Logger;

/**
 * Groups spooled instances by StudyInstanceUID and publishes one job per ready study.
 *
 * <p>A study is ready when no association that delivered to it is still open and nothing arrived
 * for the quiet period. Its job covers every spooled instance; it is published when its eligible set
 * differs from the last published one (recorded by a marker in the spool after the sink acknowledged),
 * so instances arriving after dispatch yield an update (revision + 1, update = true), and a restart
 * re-publishes exactly the studies whose marker is missing or stale.
 *
 * <p>A study whose job the sink rejects for good (too large), or that failed {@code maxAttempts} times, is
 * quarantined: a marker in the spool records why, and its images are not read or decoded again until
 * {@link #retry} releases it. Its files stay; so does the marker across restarts.
 *
 * <p>All assembly runs on one thread: studies are assembled one at a time, never concurrently.
 */
public final class StudyAssembler implements Spool.Listener, Closeable {

    private static final Logger LOG = Logger.getLogger(StudyAssembler.class);

    private final Spool spool;
    private final Supplier<StudyJobSink> sink;
    private final WorkingImageDecoder decoder;
    private final Duration quietPeriod;
    private final Duration retryDelay;
    private final int maxAttempts;
    /** cxr.assembly.max-images: bounds the working images held for one study's job. */
    private final int maxImages;
    private final IngestMetrics metrics;
    private final ScheduledExecutorService executor;

    private final Object lock = new Object();
    private final Map<String, Study> studies = new HashMap<>();
    private final Map<Long, Set<String>> studiesByAssociation = new HashMap<>();

    private static final class Study {
        final Set<Long> openAssociations = new HashSet<>();
        long lastActivityNanos;
        long notBeforeNanos;
        boolean dirty;
        /** Instances whose ineligibility was already counted (metrics count each instance once). */
        final Set<String> counted = new HashSet<>();
        /** Failed attempts since the last success or retry. */
        int failures;
        /** Non-null while quarantined: the study is skipped by {@link #tick} and not pending. */
        Spool.Quarantined quarantined;
        /** An operator asked for a new revision of an unchanged instance set (re-score by the models now loaded). */
        boolean rescore;
    }

    /** A quarantined study, for operators. */
    public record QuarantinedStudy(String studyInstanceUid, String reason, int attempts, long sinceEpochMs) {
    }

    public StudyAssembler(Spool spool, Supplier<StudyJobSink> sink, WorkingImageDecoder decoder,
                          Duration quietPeriod, Duration retryDelay, int maxAttempts, int maxImages, IngestMetrics metrics) {
        if (maxAttempts < 1) {
            throw new IllegalArgumentException("cxr.assembly.max-publish-attempts must be at least 1: " + maxAttempts);
        }
        if (maxImages < 1) {
            throw new IllegalArgumentException("cxr.assembly.max-images must be at least 1: " + maxImages);
        }
        this.maxImages = maxImages;
        this.spool = spool;
        this.sink = sink;
        this.decoder = decoder;
        this.quietPeriod = quietPeriod;
        this.retryDelay = retryDelay;
        this.maxAttempts = maxAttempts;
        this.metrics = metrics;
        this.executor = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "study-assembler");
            t.setDaemon(true);
            return t;
        });
        metrics.spoolDepth(spool::instanceCount);
        metrics.pendingStudies(this::pending);
        metrics.quarantinedStudies(() -> quarantined().size());
    }

    /** Starts the readiness checks; every spooled study is reconsidered (crash recovery) unless quarantined. */
    public void start() {
        long now = System.nanoTime();
        synchronized (lock) {
            for (String study : spool.studyUids()) {
                Study s = studies.computeIfAbsent(study, k -> new Study());
                s.dirty = true;
                s.lastActivityNanos = now - quietPeriod.toNanos();
                try {
                    s.quarantined = spool.quarantined(study).orElse(null);
                } catch (IOException | RuntimeException e) {
                    // an unreadable marker must not stop ingest: the study is then tried again like any other
                    LOG.warnf("study %s: quarantine marker unreadable, study will be retried: %s", study, e.toString());
                }
            }
        }
        // the fallback sweep: retries after retryDelay, operator retries and re-scores, recovery. A study that an
        // association just completed does not wait for it: associationEnded schedules a check at the very end of
        // its quiet period, so that at idle a study is assembled within milliseconds of it (a sweep alone adds up
        // to a whole period of this tick)
        long tick = Math.max(50, Math.min(500, quietPeriod.toMillis() / 4));
        executor.scheduleWithFixedDelay(this::tick, tick, tick, TimeUnit.MILLISECONDS);
    }

    @Override
    public void close() {
        executor.shutdownNow();
        try {
            executor.awaitTermination(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    public int pending() {
        synchronized (lock) {
            int n = 0;
            for (Study s : studies.values()) {
                if (s.dirty && s.quarantined == null) {
                    n++;
                }
            }
            return n;
        }
    }

    /** The quarantined studies, oldest first. */
    public List<QuarantinedStudy> quarantined() {
        synchronized (lock) {
            List<QuarantinedStudy> out = new ArrayList<>();
            studies.forEach((uid, s) -> {
                if (s.quarantined != null) {
                    out.add(new QuarantinedStudy(uid, s.quarantined.reason(), s.quarantined.attempts(),
                            s.quarantined.sinceEpochMs()));
                }
            });
            out.sort(java.util.Comparator.comparingLong(QuarantinedStudy::sinceEpochMs));
            return out;
        }
    }

    /**
     * Releases quarantined studies (one, or all when {@code studyUid} is null): their marker is removed and
     * they are assembled again at the next tick, with a fresh count of attempts.
     *
     * @return the released Study Instance UIDs
     */
    public List<String> retry(String studyUid) throws IOException {
        List<String> released = new ArrayList<>();
        try {
            synchronized (lock) {
                for (Map.Entry<String, Study> e : studies.entrySet()) {
                    Study s = e.getValue();
                    if (s.quarantined == null || (studyUid != null && !studyUid.equals(e.getKey()))) {
                        continue;
                    }
                    spool.releaseQuarantine(e.getKey());
                    s.quarantined = null;
                    s.failures = 0;
                    s.dirty = true;
                    s.notBeforeNanos = System.nanoTime();
                    released.add(e.getKey());
                }
            }
        } finally {
            for (String uid : released) {
                Audit.record(Audit.Event.RETRIED, uid, "by operator");
            }
        }
        return released;
    }

    /** The spool's record of a study, for operators: UIDs and counts only. */
    public record SpooledStudy(String studyInstanceUid, int instances, Integer lastPublishedRevision, String lastJobId,
                               int eligible, String quarantineReason) {
    }

    public Optional<SpooledStudy> spooled(String studyUid) throws IOException {
        List<String> instances = spool.instanceUids(studyUid);
        if (instances.isEmpty()) {
            return Optional.empty();
        }
        Optional<Spool.Published> last = spool.lastPublished(studyUid);
        Optional<Spool.Quarantined> q = spool.quarantined(studyUid);
        return Optional.of(new SpooledStudy(studyUid, instances.size(), last.map(Spool.Published::revision).orElse(null),
                last.map(Spool.Published::jobId).orElse(null), last.map(p -> p.eligible().size()).orElse(0),
                q.map(Spool.Quarantined::reason).orElse(null)));
    }

    /**
     * Publishes the study again as a new revision even though its instances did not change, so that the models
     * now loaded score it (after a model update). Asynchronous, at the next tick.
     *
     * @return null when accepted, else why not
     */
    public String rescore(String studyUid) throws IOException {
        if (spool.instanceUids(studyUid).isEmpty()) {
            return "study " + studyUid + " is not in the spool";
        }
        if (spool.lastPublished(studyUid).isEmpty()) {
            return "study " + studyUid + " was never published: nothing to re-score";
        }
        synchronized (lock) {
            Study s = studies.computeIfAbsent(studyUid, k -> new Study());
            if (s.quarantined != null) {
                return "study " + studyUid + " is quarantined: retry it instead";
            }
            s.rescore = true;
            s.dirty = true;
            s.notBeforeNanos = System.nanoTime();
            s.lastActivityNanos = System.nanoTime() - quietPeriod.toNanos();
        }
        Audit.record(Audit.Event.RESCORED, studyUid, "requested by operator");
        return null;
    }

    @Override
    public void instanceStored(String studyUid, String sopInstanceUid, long associationId) {
        synchronized (lock) {
            Study s = studies.computeIfAbsent(studyUid, k -> new Study());
            s.openAssociations.add(associationId);
            s.lastActivityNanos = System.nanoTime();
            s.dirty = true;
            studiesByAssociation.computeIfAbsent(associationId, k -> new HashSet<>()).add(studyUid);
        }
        Audit.record(Audit.Event.RECEIVED, studyUid, "instance=" + sopInstanceUid + " association=" + associationId);
    }

    @Override
    public void associationEnded(long associationId) {
        synchronized (lock) {
            Set<String> touched = studiesByAssociation.remove(associationId);
            if (touched == null) {
                return;
            }
            long now = System.nanoTime();
            for (String uid : touched) {
                Study s = studies.get(uid);
                if (s != null) {
                    s.openAssociations.remove(associationId);
                    s.lastActivityNanos = now;
                }
            }
        }
        // one check when the quiet period that starts now ends (scheduled after 'now', so it is over by then); a
        // study with another association still open, or touched again meanwhile, is left to a later check
        try {
            executor.schedule(this::tick, quietPeriod.toNanos(), TimeUnit.NANOSECONDS);
        } catch (java.util.concurrent.RejectedExecutionException closing) {
            // shutting down: the spool keeps the study, the next start assembles it
        }
    }

    private void tick() {
        try {
            List<String> ready = new ArrayList<>();
            long now = System.nanoTime();
            synchronized (lock) {
                for (Map.Entry<String, Study> e : studies.entrySet()) {
                    Study s = e.getValue();
                    if (s.dirty && s.quarantined == null && s.openAssociations.isEmpty()
                            && now - s.lastActivityNanos >= quietPeriod.toNanos() && now - s.notBeforeNanos >= 0) {
                        ready.add(e.getKey());
                    }
                }
            }
            for (String study : ready) {
                assembleAndPublish(study);
            }
        } catch (RuntimeException e) {
            LOG.error("study assembly tick failed", e);
        }
    }

    private void assembleAndPublish(String studyUid) {
        long activityAtStart;
        Set<String> counted;
        boolean rescore;
        synchronized (lock) {
            Study s = studies.get(studyUid);
            activityAtStart = s.lastActivityNanos;
            counted = s.counted;
            rescore = s.rescore;
        }
        boolean done;
        Exception failure = null;
        try {
            done = assemble(studyUid, counted, activityAtStart, rescore);
        } catch (Exception e) {
            metrics.publishFailed();
            failure = e;
            done = false;
        }
        Spool.Quarantined quarantine = null;
        synchronized (lock) {
            Study s = studies.get(studyUid);
            if (done) {
                s.failures = 0;
                s.rescore = false;
                // instances that came in while we assembled make the study dirty again
                if (s.lastActivityNanos == activityAtStart) {
                    s.dirty = false;
                }
            } else {
                s.notBeforeNanos = System.nanoTime() + retryDelay.toNanos();
                if (!(failure instanceof StudyJobSink.Unavailable)) {
                    s.failures++;
                }
                if (failure instanceof StudyJobSink.Rejected || s.failures >= maxAttempts) {
                    quarantine = new Spool.Quarantined(reason(failure), Math.max(1, s.failures), System.currentTimeMillis());
                    s.quarantined = quarantine;
                    // under the lock, so that a retry cannot release the study between its state and its marker
                    writeMarker(studyUid, quarantine);
                }
            }
        }
        if (quarantine != null) {
            recordQuarantine(studyUid, quarantine);
        } else if (failure != null) {
            LOG.warnf("study %s: job not published, will retry: %s", studyUid, failure.toString());
        }
    }

    private void writeMarker(String studyUid, Spool.Quarantined q) {
        try {
            spool.markQuarantined(studyUid, q);
        } catch (IOException | RuntimeException e) {
            // quarantined in memory all the same; after a restart the study is tried again
            LOG.warnf("study %s: quarantine marker not written: %s", studyUid, e.toString());
        }
    }

    private void recordQuarantine(String studyUid, Spool.Quarantined q) {
        LOG.warnf("study %s: quarantined after %d attempt(s), not decoded again until retried: %s",
                studyUid, q.attempts(), q.reason());
        Audit.record(Audit.Event.QUARANTINED, studyUid, "attempts=" + q.attempts() + " reason=" + q.reason());
    }

    /** One line, bounded: it goes into a marker file, the audit trail and the admin endpoint. */
    private static String reason(Exception e) {
        String r = e instanceof StudyJobSink.Rejected ? e.getMessage() : e.toString();
        r = r == null ? e.getClass().getSimpleName() : r.replaceAll("\\s+", " ");
        return r.length() > 300 ? r.substring(0, 300) + "..." : r;
    }

    /** @return true when the study needs nothing more (published, or nothing to publish). */
    private boolean assemble(String studyUid, Set<String> counted, long activityAtStart, boolean rescore) throws Exception {
        long readStart = System.nanoTime();
        List<String> instanceUids = spool.instanceUids(studyUid);
        StudyJobBuilder builder = new StudyJobBuilder();
        for (String sop : instanceUids) {
            StudyJobBuilder.FileOutcome outcome = StudyJobBuilder.read(spool.instanceFile(studyUid, sop), decoder,
                    builder.images().size() < maxImages);
            builder.add(sop, outcome);
            if (outcome.image() != null) {
                metrics.imageDecoded();
            } else {
                countSkipped(counted, sop, outcome);
            }
        }
        List<SourceImage> images = builder.images();
        List<SkippedInstance> skipped = builder.skipped();
        long over = skipped.stream().filter(sk -> Eligibility.TOO_MANY_IMAGES.equals(sk.getReason())).count();
        if (over > 0 && counted.add("over:" + over)) {
            LOG.warnf("study %s: %d eligible instances beyond cxr.assembly.max-images (%d) are skipped", studyUid, over,
                    maxImages);
        }
        if (images.isEmpty()) {
            if (!instanceUids.isEmpty() && counted.add("study:" + instanceUids.size())) {
                metrics.studyWithoutEligible();
                LOG.infof("study %s: no eligible image among %d instances, no job", studyUid, instanceUids.size());
                Audit.record(Audit.Event.SKIPPED, studyUid, "instances=" + instanceUids.size() + " reason=no eligible image");
            }
            return true;
        }
        List<String> eligible = builder.eligible();
        Optional<Spool.Published> last = spool.lastPublished(studyUid);
        if (!rescore && last.isPresent() && new HashSet<>(last.get().eligible()).equals(new HashSet<>(eligible))) {
            return true;
        }
        int revision = last.map(p -> p.revision() + 1).orElse(0);
        StudyJob job = builder.job()
                .setRevision(revision)
                .setUpdate(revision > 0)
                .setReceivedAtEpochMs(System.currentTimeMillis() - (System.nanoTime() - activityAtStart) / 1_000_000)
                .build();
        String jobId = job.getJobId();
        StudyJobSink target = sink.get();
        if (target == null) {
            throw new StudyJobSink.Unavailable("no StudyJobSink available", null);
        }
        long t0 = System.nanoTime();
        target.publish(job);
        long t1 = System.nanoTime();
        spool.markPublished(studyUid, new Spool.Published(revision, jobId, eligible, instanceUids));
        metrics.studyPublished(revision > 0, Duration.ofNanos(t1 - t0), Duration.ofNanos(Math.max(0, t1 - activityAtStart)));
        // the stages of the study's wait after its last activity: quiet period and sweep, decode and build, publish
        Audit.record(Audit.Event.QUEUED, studyUid, String.format(
                "job=%s revision=%d images=%d skipped=%d since_activity_ms=%d build_ms=%d publish_ms=%d",
                jobId, revision, images.size(), skipped.size(), (readStart - activityAtStart) / 1_000_000,
                (t0 - readStart) / 1_000_000, (t1 - t0) / 1_000_000));
        LOG.infof("study %s: published job %s revision %d (%d images, %d skipped)", studyUid, jobId, revision,
                images.size(), skipped.size());
        return true;
    }

    /** Metrics and the log count each skipped instance once, however often its study is assembled. */
    private void countSkipped(Set<String> counted, String sop, StudyJobBuilder.FileOutcome outcome) {
        if (counted.add(sop)) {
            metrics.instanceIneligible(outcome.skipReason());
            if (outcome.error() != null) {
                LOG.infof("instance %s skipped: %s (%s)", sop, outcome.skipReason(), outcome.error().getMessage());
            } else {
                LOG.debugf("instance %s skipped: %s", sop, outcome.skipReason());
            }
        }
    }
}
