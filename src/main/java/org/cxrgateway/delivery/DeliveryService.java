package org.cxrgateway.delivery;

import org.cxrgateway.Audit;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.message.PoisonMessageException;
import org.cxrgateway.dicom.SrModel.InstanceRef;
import org.cxrgateway.report.IssuedSr;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportWarmUp;
import org.cxrgateway.report.ReportException;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.Supersession;
import org.cxrgateway.schema.v2.StudyResult;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Hands results over to the destinations. {@link #accept} returns as soon as the result is durable in the
 * {@link PendingStore} once per destination, so the caller may commit its offset right away; each destination
 * then drains its own pending items on its own thread, a retry being a scheduled task rather than a sleeping
 * thread. A down PACS therefore delays only its own items, never the FHIR server or new studies. An item
 * leaves the pending store when its destination acknowledged it (and the ledger recorded it) or when its dead
 * letter is written.
 *
 * <p>Each result is entered in its study's {@link StudyHistory} at hand-over; what it supersedes (the SRs of the
 * same model handed over before it) is read from there when its reports are built, an older result is not sent
 * where a later one was already delivered, and a retraction ({@link #retract}) withdraws everything issued.
 *
 * <p>Metrics: cxr_delivery_total{destination,outcome=delivered|dead_lettered}, cxr_delivery_retries_total
 * {destination}, cxr_delivery_pending{destination} and cxr_study_end_to_end_seconds (from the reception of the
 * study's last instance, or the result's creation when that is unknown, to the acknowledgement by its last
 * destination).
 */
public final class DeliveryService implements AutoCloseable {

    /** The longest wait a receiver's Retry-After can impose on one attempt: a peer's word is bounded too. */
    static final Duration MAX_RETRY_AFTER = Duration.ofMinutes(5);

    private static final Logger LOG = Logger.getLogger(DeliveryService.class);

    /** How one destination's item ended; createdAt is the result's, for the end-to-end timer. */
    record Outcome(boolean delivered, long receivedAtEpochMs) {
    }

    private final ReportBuilder builder;
    private final Map<String, Destination> destinations = new LinkedHashMap<>();
    private final Map<String, ScheduledExecutorService> executors = new LinkedHashMap<>();
    private final Map<String, AtomicInteger> depth = new LinkedHashMap<>();
    private final Map<String, CompletableFuture<Outcome>> inFlight = new ConcurrentHashMap<>();
    private final DeliveryLedger ledger;
    private final DeadLetterStore deadLetters;
    private final RetryPolicy retry;
    private final PendingStore pending;
    private final StudyHistory history;
    private final PartStore parts;
    private final AtomicInteger partialJobs = new AtomicInteger();
    private final MeterRegistry metrics;
    private final Timer endToEnd;
    private final AtomicInteger delivered = new AtomicInteger();
    private final AtomicInteger deadLettered = new AtomicInteger();

    public DeliveryService(ReportBuilder builder, List<Destination> destinations, DeliveryLedger ledger,
                           DeadLetterStore deadLetters, RetryPolicy retry, PendingStore pending, MeterRegistry metrics) {
        this.builder = builder;
        this.ledger = ledger;
        this.deadLetters = deadLetters;
        this.retry = retry;
        this.pending = pending;
        // beside the pending store, so every way of building the service keeps a study's life
        this.history = new StudyHistory(pending.dir().resolveSibling("studies"));
        this.parts = new PartStore(pending.dir().resolveSibling("parts"));
        this.metrics = metrics;
        Gauge.builder("cxr.delivery.partial.jobs", partialJobs, AtomicInteger::get)
                .description("Multi-part results of which delivery holds some parts and awaits the rest")
                .register(metrics);
        for (Destination d : destinations) {
            this.destinations.put(d.name(), d);
            this.executors.put(d.name(), Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "delivery-" + d.name());
                t.setDaemon(true);
                return t;
            }));
            AtomicInteger n = new AtomicInteger();
            depth.put(d.name(), n);
            Gauge.builder("cxr.delivery.pending", n, AtomicInteger::get).tag("destination", d.name())
                    .description("Results handed over to this destination and not yet acknowledged or dead-lettered")
                    .register(metrics);
        }
        this.endToEnd = Timer.builder("cxr.study.end.to.end")
                .description("From the result's creation to its acknowledgement by the last destination")
                .publishPercentiles(0.5, 0.95).register(metrics);
    }

    public List<DeadLetterStore.DeadLetter> deadLetters() {
        return deadLetters.list();
    }

    public List<String> destinationNames() {
        return List.copyOf(destinations.keySet());
    }

    /** Each destination with where it sends, for the startup log line. */
    public String describe() {
        return destinations.values().stream().map(Destination::toString).toList().toString();
    }

    public int deliveredCount() {
        return delivered.get();
    }

    public int deadLetteredCount() {
        return deadLettered.get();
    }

    /** Results handed over to a destination and not yet settled there. */
    public int pendingCount(String destination) {
        AtomicInteger n = depth.get(destination);
        return n == null ? 0 : n.get();
    }

    /**
     * Makes the result durable for every destination, then starts delivering it. When this returns the
     * message may be committed; the future completes once every destination acknowledged or dead-lettered it.
     *
     * @throws java.io.UncheckedIOException when the hand-off could not be made durable: do not commit
     */
    public CompletableFuture<Void> accept(byte[] original, StudyResult result) {
        if (result.getPartCount() > 1) {
            return acceptPart(original, result);
        }
        return timeWhenAllDelivered(handOver(original, destinations.keySet()));
    }

    /**
     * One part of a multi-part result: held durably in the {@link PartStore}; the last one to arrive makes the
     * whole-study result (one SR per model over all the study's images), which is handed over like a
     * single-part result before the parts are forgotten. Returns at once (completed) for a part that completes
     * nothing yet.
     */
    private CompletableFuture<Void> acceptPart(byte[] original, StudyResult result) {
        int held = parts.put(result.getJobId(), result.getPartIndex(), original);
        if (held < result.getPartCount()) {
            if (held == 1) {
                partialJobs.incrementAndGet();
            }
            return CompletableFuture.completedFuture(null);
        }
        previewParts.forget(result.getJobId());
        CompletableFuture<Void> done = completeJob(parts.read(result.getJobId()));
        partialJobs.updateAndGet(n -> Math.max(0, n - 1));
        parts.remove(result.getJobId());
        return done;
    }

    /** Merges all parts of a job and hands the whole-study result over; a bad set goes to the dead letters. */
    private CompletableFuture<Void> completeJob(List<byte[]> originals) {
        List<StudyResult> decoded = new ArrayList<>();
        StudyResult whole;
        try {
            for (byte[] b : originals) {
                decoded.add(MessageCodec.decodeResult(b));
            }
            whole = org.cxrgateway.message.StudyParts.merge(decoded);
        } catch (PoisonMessageException | IllegalArgumentException e) {
            // parts that decoded once (the consumer checked each) but do not fit together: keep them for an operator
            LOG.errorf("result parts of job %s do not make a study, dead-lettered: %s",
                    decoded.isEmpty() ? "?" : decoded.get(0).getJobId(), e.getMessage());
            for (String d : destinations.keySet()) {
                deadLetters.add(new DeadLetterStore.DeadLetter(UUID.randomUUID().toString(), d, "?",
                        "result parts do not make a study: " + e.getMessage(), "", System.currentTimeMillis(), originals.get(0)));
            }
            return CompletableFuture.completedFuture(null);
        }
        return timeWhenAllDelivered(handOver(MessageCodec.encode(whole), destinations.keySet()));
    }

    /**
     * A preview (StudyResult.preview: the result before its guided maps, the full result following on the same
     * partition): its SRs go at once to each destination that takes SRs first and has nothing pending, on that
     * destination's thread, so ahead of the full result. Never durable and never retried: the full result sends
     * whatever the preview did not (the ledger skips what a PACS acknowledged, and the SRs of both are the same
     * bytes). The preview is entered in the study's history first, as the full result would be, so that its SRs
     * name the same predecessors. The parts of a multi-part preview wait in memory, for at most
     * {@value #MAX_PREVIEW_JOBS} jobs of at most {@value #MAX_PREVIEW_PARTS} parts (each part up to a message, about
     * 1 MiB, so a few tens of MiB at worst); another is dropped (counted), costing only time: a study of many images
     * is not the reader-waits-at-idle case previews are for.
     */
    public void preview(StudyResult preview) {
        StudyResult whole = preview;
        if (preview.getPartCount() > MAX_PREVIEW_PARTS) {
            metrics.counter("cxr.delivery.previews", "destination", "all", "outcome", "dropped").increment();
            return;
        }
        if (preview.getPartCount() > 1) {
            whole = previewParts.add(preview);
            if (whole == null) {
                return;
            }
        }
        List<Destination> targets = destinations.values().stream()
                .filter(d -> d.srsFirst() && depth.get(d.name()).get() == 0).toList();
        if (targets.isEmpty() || !recordHandOver(whole)) {
            return;
        }
        long received = System.nanoTime();
        for (Destination d : targets) {
            StudyResult r = whole;
            executors.get(d.name()).execute(() -> sendPreviewSrs(d, r, received));
        }
    }

    /** Jobs whose preview parts delivery holds in memory at most, and their most parts; see {@link #preview}. */
    static final int MAX_PREVIEW_JOBS = 8, MAX_PREVIEW_PARTS = 4;

    /** The parts of multi-part previews, by job, until all are in; bounded, and forgotten on a restart. */
    private final class PreviewParts {
        private final Map<String, Map<Integer, StudyResult>> jobs = new LinkedHashMap<>();

        /** The merged preview once this part completes its job, null before (or when the preview is dropped). */
        synchronized StudyResult add(StudyResult part) {
            Map<Integer, StudyResult> held = jobs.get(part.getJobId());
            if (held == null) {
                if (jobs.size() >= MAX_PREVIEW_JOBS) {
                    metrics.counter("cxr.delivery.previews", "destination", "all", "outcome", "dropped").increment();
                    return null;
                }
                held = new java.util.HashMap<>();
                jobs.put(part.getJobId(), held);
            }
            held.putIfAbsent(part.getPartIndex(), part);
            if (held.size() < part.getPartCount()) {
                return null;
            }
            jobs.remove(part.getJobId());
            try {
                return org.cxrgateway.message.StudyParts.merge(List.copyOf(held.values()));
            } catch (IllegalArgumentException e) {
                LOG.warnf("preview parts of job %s do not make a study, ignored: %s", part.getJobId(), e.getMessage());
                return null;
            }
        }

        /** Forgets a job's preview parts once its full result is complete (a preview part may have been lost). */
        synchronized void forget(String jobId) {
            jobs.remove(jobId);
        }
    }

    private final PreviewParts previewParts = new PreviewParts();

    /** On the destination's thread: the preview's SRs, unless the study was retracted or a later result went there. */
    private void sendPreviewSrs(Destination d, StudyResult preview, long receivedNanos) {
        String study = preview.getStudy().getStudyInstanceUid();
        String key = StudyHistory.key(preview.getJobId(), preview.getRevision());
        try {
            if (history.life(study).map(l -> l.retraction() != null).orElse(false) || history.staleFor(study, key, d.name())) {
                return;
            }
            ReportSet srs = builder.stage(preview, history.supersession(study, key)).srsOnly();
            d.deliver(srs, ledger.view(d.name()));
            metrics.counter("cxr.delivery.previews", "destination", d.name(), "outcome", "sent").increment();
            // ms: from the preview's arrival in delivery to the destination's acknowledgement of its SRs
            Audit.record(Audit.Event.SRS_DELIVERED, study, String.format("destination=%s srs=%d job=%s ms=%d", d.name(),
                    srs.dicom().size(), preview.getJobId(), (System.nanoTime() - receivedNanos) / 1_000_000));
        } catch (ReportException | DeliveryException | RuntimeException e) {
            metrics.counter("cxr.delivery.previews", "destination", d.name(), "outcome", "failed").increment();
            LOG.infof("study %s: the preview's SRs were not sent to %s (its full result will send them): %s", study,
                    d.name(), e.getMessage());
        }
    }

    /** {@link #accept} for a result at hand. */
    public CompletableFuture<Void> submit(StudyResult result) {
        return accept(MessageCodec.encode(result), result);
    }

    /**
     * Builds one throw-away report so that the first study does not wait for one-time JVM costs (HAPI's
     * FHIR model scan, fonts); call once at start-up, before consuming. A failure only costs latency.
     */
    public void warmUp() {
        try {
            LOG.infof("report builders warmed up in %d ms", ReportWarmUp.run(builder));
        } catch (RuntimeException | ReportException e) {
            LOG.warnf("report warm-up failed (the first study will be slower): %s", e.toString());
        }
    }

    /** Restarts what a previous run handed over and did not settle; call once at startup. */
    public void resume() {
        // a whole set of parts whose merged result may not have been handed over before a crash
        for (java.nio.file.Path job : parts.jobs()) {
            List<byte[]> held = PartStore.readDir(job);
            try {
                if (!held.isEmpty() && MessageCodec.decodeResult(held.get(0)).getPartCount() == held.size()) {
                    completeJob(held);
                    PartStore.removeDir(job);
                } else if (!held.isEmpty()) {
                    partialJobs.incrementAndGet();
                }
            } catch (PoisonMessageException e) {
                LOG.errorf("result part in %s unreadable, left for an operator: %s", job, e.getMessage());
            }
        }
        Map<String, List<CompletableFuture<Outcome>>> byId = new LinkedHashMap<>();
        for (String name : destinations.keySet()) {
            for (PendingStore.Item item : pending.list(name)) {
                byId.computeIfAbsent(item.id(), k -> new ArrayList<>()).add(start(item));
            }
        }
        if (!byId.isEmpty()) {
            LOG.infof("resuming %d pending result(s)", byId.size());
        }
        byId.values().forEach(this::timeWhenAllDelivered);
        for (StudyHistory.Life l : history.unfinishedRetractions(destinationNames())) {
            LOG.infof("study %s: resuming its retraction", l.studyInstanceUid());
            deliverRetraction(l);
        }
    }

    private ScheduledExecutorService housekeeping;

    /**
     * Forgets, now and every hour, the delivery records of settled studies older than {@code retention}
     * (cxr.delivery.retention): their histories and the ledger's acknowledgements. Zero or negative keeps everything.
     */
    public synchronized void startHousekeeping(Duration retention) {
        if (retention.isZero() || retention.isNegative() || housekeeping != null) {
            return;
        }
        housekeeping = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "delivery-housekeeping");
            t.setDaemon(true);
            return t;
        });
        housekeeping.scheduleWithFixedDelay(() -> prune(retention), 0, 1, TimeUnit.HOURS);
    }

    /** One housekeeping pass (see {@link #startHousekeeping}); never throws, so the schedule goes on. */
    void prune(Duration retention) {
        try {
            long cutoff = System.currentTimeMillis() - retention.toMillis();
            int studies = history.prune(cutoff, destinations.keySet());
            int acks = ledger.prune(cutoff);
            metrics.counter("cxr.delivery.pruned", "record", "study").increment(studies);
            metrics.counter("cxr.delivery.pruned", "record", "acknowledgement").increment(acks);
            if (studies + acks > 0) {
                LOG.infof("housekeeping: forgot %d settled stud%s and %d acknowledgement(s) unchanged for %s", studies,
                        studies == 1 ? "y" : "ies", acks, retention);
            }
        } catch (RuntimeException e) {
            LOG.warnf("housekeeping failed, tried again in an hour: %s", e.getMessage());
        }
    }

    /** The study's life as delivery recorded it; empty when no result of it was handed over here. */
    public java.util.Optional<StudyHistory.Life> life(String studyUid) {
        return history.life(studyUid);
    }

    /** A retraction of nothing: no result of the study was ever handed over here. */
    public static final class UnknownStudy extends Exception {
        UnknownStudy(String study) {
            super("no result of study " + study + " was handed over to delivery");
        }
    }

    /**
     * Withdraws the study's results: recorded durably first (a second retraction is refused and changes nothing),
     * then each destination gets, with retries, a retraction SR per model naming every SR of that model as
     * predecessor (and the IOCM note when configured) and the FHIR reports and Observations entered-in-error. A
     * destination that fails throughout is retried at the next start. Results of the study that arrive later are
     * not delivered.
     *
     * @return the recorded life and a future completed once every destination has settled the retraction
     */
    public Map.Entry<StudyHistory.Life, CompletableFuture<Void>> retract(String studyUid, String reason, String by)
            throws UnknownStudy, StudyHistory.AlreadyRetracted {
        StudyHistory.Life l = history.retract(studyUid, UUID.randomUUID().toString(), reason, by)
                .orElseThrow(() -> new UnknownStudy(studyUid));
        Audit.record(Audit.Event.RETRACTED, studyUid, String.format("by=%s revisions=%d reason_chars=%d",
                by, l.issues().size(), reason.length()));
        metrics.counter("cxr.delivery.retractions").increment();
        return Map.entry(l, deliverRetraction(l));
    }

    private CompletableFuture<Void> deliverRetraction(StudyHistory.Life l) {
        StudyHistory.Retraction r = l.retraction();
        Map<String, IssuedSr> latest = new LinkedHashMap<>();
        Map<String, List<InstanceRef>> allSrs = new LinkedHashMap<>();
        List<InstanceRef> issued = new ArrayList<>();
        for (StudyHistory.Issue i : l.issues()) {
            for (StudyHistory.Sr sr : i.srs()) {
                InstanceRef ref = new InstanceRef(sr.sr().sopClassUid(), sr.sr().sopInstanceUid(), sr.sr().seriesInstanceUid());
                latest.put(sr.modelId(), new IssuedSr(sr.modelId(), sr.modelVersion(), sr.diagnostic(), ref, sr.images().stream()
                        .map(x -> new InstanceRef(x.sopClassUid(), x.sopInstanceUid(), x.seriesInstanceUid())).toList()));
                List<InstanceRef> list = allSrs.computeIfAbsent(sr.modelId(), k -> new ArrayList<>());
                if (!list.contains(ref)) {
                    list.add(ref);
                }
                issued.add(ref);
            }
            i.objects().forEach(o -> issued.add(new InstanceRef(o.sopClassUid(), o.sopInstanceUid(), o.seriesInstanceUid())));
        }
        ReportSet set;
        try {
            set = builder.buildRetraction(l.study(), r.id(), l.issues().size() + 1, List.copyOf(latest.values()), allSrs,
                    issued.stream().distinct().toList(), r.reason(), r.atEpochMs(), history.lastBundle(l.studyInstanceUid()).orElse(null));
        } catch (ReportException | RuntimeException e) {
            LOG.errorf("study %s: retraction cannot be built: %s", l.studyInstanceUid(), e.getMessage());
            return CompletableFuture.failedFuture(e);
        }
        List<CompletableFuture<Boolean>> all = new ArrayList<>();
        for (Destination d : destinations.values()) {
            if (r.deliveredTo().contains(d.name())) {
                continue;
            }
            CompletableFuture<Boolean> f = new CompletableFuture<>();
            all.add(f);
            executors.get(d.name()).execute(() -> attemptRetraction(d, set, 1, f));
        }
        return CompletableFuture.allOf(all.toArray(new CompletableFuture[0]));
    }

    private void attemptRetraction(Destination d, ReportSet set, int n, CompletableFuture<Boolean> done) {
        try {
            d.deliver(set, ledger.view(d.name()));
            history.retractionDelivered(set.studyInstanceUid(), d.name());
            LOG.infof("study %s: retraction delivered to %s (attempt %d)", set.studyInstanceUid(), d.name(), n);
            Audit.record(Audit.Event.DELIVERED, set.studyInstanceUid(), String.format("destination=%s retraction objects=%d attempt=%d",
                    d.name(), set.dicom().size(), n));
            done.complete(true);
        } catch (DeliveryException | RuntimeException e) {
            boolean retryable = !(e instanceof DeliveryException de) || de.retryable();
            if (retryable && n < retry.maxAttempts()) {
                long delay = retry.delayMillis(n + 1);
                LOG.warnf("study %s: retraction to %s failed (attempt %d), retry in %d ms: %s", set.studyInstanceUid(),
                        d.name(), n, delay, e.getMessage());
                executors.get(d.name()).schedule(() -> attemptRetraction(d, set, n + 1, done), delay, TimeUnit.MILLISECONDS);
            } else {
                // kept as not delivered in the history: the next start tries again
                LOG.errorf("study %s: retraction to %s failed after %d attempt(s), retried at the next start: %s",
                        set.studyInstanceUid(), d.name(), n, e.getMessage());
                metrics.counter("cxr.delivery.retraction.failures", "destination", d.name()).increment();
                done.complete(false);
            }
        }
    }

    private List<CompletableFuture<Outcome>> handOver(byte[] original, Collection<String> targets) {
        String id = PendingStore.idOf(original);
        if (!recordHandOver(original)) {
            return List.of();
        }
        List<String> fresh = targets.stream().filter(t -> !inFlight.containsKey(key(t, id))).toList();
        List<CompletableFuture<Outcome>> all = new ArrayList<>();
        // durable first: only then may the caller commit or drop its copy
        for (PendingStore.Item item : pending.put(original, fresh)) {
            all.add(start(item));
        }
        for (String t : targets) {
            CompletableFuture<Outcome> f = inFlight.get(key(t, id));
            if (f != null && !fresh.contains(t)) {
                all.add(f);
            }
        }
        return all;
    }

    /**
     * Records the result in its study's history before it becomes pending, so that its place among the study's
     * results (what it supersedes) is fixed at hand-over. A result of a retracted study is not delivered.
     *
     * @return false when the result must not be delivered
     */
    private boolean recordHandOver(byte[] original) {
        StudyResult result;
        try {
            result = MessageCodec.decodeResult(original);
        } catch (PoisonMessageException | RuntimeException e) {
            // unreadable: attempt() dead-letters it with the reason
            return true;
        }
        return recordHandOver(result);
    }

    private boolean recordHandOver(StudyResult result) {
        List<IssuedSr> srs;
        try {
            srs = ReportBuilder.issuedSrs(result);
        } catch (ReportException | RuntimeException e) {
            // unrenderable: attempt() dead-letters it with the reason (a preview is not sent)
            return !result.getPreview();
        }
        String study = result.getStudy().getStudyInstanceUid();
        if (history.life(study).map(l -> l.retraction() != null).orElse(false)) {
            if (result.getPreview()) {
                return false; // said once, for the full result
            }
            LOG.warnf("study %s: result revision %d not delivered, the study's results were retracted", study,
                    result.getRevision());
            metrics.counter("cxr.delivery.retracted.dropped").increment();
            Audit.record(Audit.Event.SUPERSEDED, study, "job=" + result.getJobId() + " revision=" + result.getRevision()
                    + " not delivered: retracted");
            return false;
        }
        history.handedOver(result.getStudy(), result.getJobId(), result.getRevision(), srs);
        return true;
    }

    private static long startOf(StudyResult result) {
        return result.getReceivedAtEpochMs() > 0 ? result.getReceivedAtEpochMs() : result.getCreatedAtEpochMs();
    }

    private CompletableFuture<Void> timeWhenAllDelivered(List<CompletableFuture<Outcome>> all) {
        return CompletableFuture.allOf(all.toArray(new CompletableFuture[0])).thenRun(() -> {
            List<Outcome> outcomes = all.stream().map(CompletableFuture::join).toList();
            if (!outcomes.isEmpty() && outcomes.stream().allMatch(Outcome::delivered)) {
                long created = outcomes.get(0).receivedAtEpochMs();
                if (created > 0) {
                    endToEnd.record(Math.max(0, System.currentTimeMillis() - created), TimeUnit.MILLISECONDS);
                }
            }
        });
    }

    private static String key(String destination, String id) {
        return destination + "/" + id;
    }

    private CompletableFuture<Outcome> start(PendingStore.Item item) {
        CompletableFuture<Outcome> done = new CompletableFuture<>();
        CompletableFuture<Outcome> running = inFlight.putIfAbsent(key(item.destination(), item.id()), done);
        if (running != null) {
            return running;
        }
        depth.get(item.destination()).incrementAndGet();
        executors.get(item.destination()).execute(() -> attempt(item, 1, done));
        return done;
    }

    private void attempt(PendingStore.Item item, int n, CompletableFuture<Outcome> done) {
        Destination d = destinations.get(item.destination());
        byte[] original;
        try {
            original = item.read();
        } catch (IOException e) {
            // the pending file is our only copy; without it there is nothing left to deliver or dead-letter
            LOG.errorf("pending item %s of %s is unreadable, dropped: %s", item.id(), d.name(), e.getMessage());
            finish(item, done, new Outcome(false, 0));
            return;
        }
        StudyResult result;
        ReportBuilder.Staged staged;
        String study;
        String key;
        long buildMs;
        long attemptStart = System.nanoTime();
        try {
            result = MessageCodec.decodeResult(original);
            study = result.getStudy().getStudyInstanceUid();
            key = StudyHistory.key(result.getJobId(), result.getRevision());
            if (history.life(study).map(l -> l.retraction() != null).orElse(false)) {
                LOG.infof("study %s revision %d not sent to %s: the study's results were retracted", study,
                        result.getRevision(), d.name());
                metrics.counter("cxr.delivery", "destination", d.name(), "outcome", "retracted").increment();
                history.delivered(study, d.name(), key, "retracted");
                finish(item, done, new Outcome(true, 0));
                return;
            }
            if (history.staleFor(study, key, d.name())) {
                // a later result of the study is there already: sending this one would put an older answer back
                LOG.infof("study %s revision %d not sent to %s: a later revision was delivered there", study,
                        result.getRevision(), d.name());
                metrics.counter("cxr.delivery", "destination", d.name(), "outcome", "stale").increment();
                history.delivered(study, d.name(), key, "stale");
                Audit.record(Audit.Event.SUPERSEDED, study, "destination=" + d.name() + " revision=" + result.getRevision()
                        + " not sent: a later revision was delivered");
                finish(item, done, new Outcome(true, 0));
                return;
            }
            Supersession supersession = history.supersession(study, key);
            long buildStart = System.nanoTime();
            staged = builder.stage(result, supersession);
            buildMs = (System.nanoTime() - buildStart) / 1_000_000;
        } catch (PoisonMessageException | ReportException | RuntimeException e) {
            // bad content will not improve with retries
            LOG.warnf("pending item %s cannot be rendered for %s: %s", item.id(), d.name(), e.getMessage());
            deadLetter(item, done, "?", "cannot build reports: " + e.getMessage(), "", original, 0);
            return;
        }
        // srs_ms: from the start of this attempt to the PACS's acknowledgement of the SRs, for a destination that
        // takes them first (-1 otherwise); the explanation objects are rendered only after that
        long srsMs = -1;
        long sendMs = 0;
        ReportSet set;
        try {
            if (d.srsFirst()) {
                long sendStart = System.nanoTime();
                d.deliver(staged.srsOnly(), ledger.view(d.name()));
                sendMs += (System.nanoTime() - sendStart) / 1_000_000;
                srsMs = (System.nanoTime() - attemptStart) / 1_000_000;
            }
            try {
                long renderStart = System.nanoTime();
                set = staged.complete();
                buildMs += (System.nanoTime() - renderStart) / 1_000_000;
                history.built(study, key, set.dicom().stream().map(o -> new InstanceRef(o.sopClassUid(), o.sopInstanceUid(),
                        o.seriesInstanceUid())).toList());
                history.bundle(study, key, set.fhirBundleJson());
            } catch (ReportException | RuntimeException e) {
                // as above: a rendering that failed once fails again; the SRs a PACS took already stay acknowledged
                // in the ledger, so a replay of the dead letter sends only the rest
                LOG.warnf("pending item %s cannot be rendered for %s: %s", item.id(), d.name(), e.getMessage());
                deadLetter(item, done, study, "cannot build reports: " + e.getMessage(), "", original, 0);
                return;
            }
            long sendStart = System.nanoTime();
            d.deliver(set, ledger.view(d.name()));
            sendMs += (System.nanoTime() - sendStart) / 1_000_000;
            history.delivered(set.studyInstanceUid(), d.name(), key, "delivered");
            delivered.incrementAndGet();
            metrics.counter("cxr.delivery", "destination", d.name(), "outcome", "delivered").increment();
            LOG.infof("study %s delivered to %s (attempt %d)", set.studyInstanceUid(), d.name(), n);
            // build_ms: rendering the SR, SCs, maps and FHIR bundle; send_ms: the destination's acknowledgement of all
            // (both sends when the SRs went first); srs_ms: see above
            Audit.record(Audit.Event.DELIVERED, set.studyInstanceUid(), String.format(
                    "destination=%s objects=%d attempt=%d build_ms=%d send_ms=%d srs_ms=%d",
                    d.name(), set.dicom().size(), n, buildMs, sendMs, srsMs));
            finish(item, done, new Outcome(true, startOf(result)));
        } catch (DeliveryException | RuntimeException e) {
            boolean retryable = !(e instanceof DeliveryException de) || de.retryable();
            if (retryable && n < retry.maxAttempts()) {
                long delay = retry.delayMillis(n + 1);
                if (e instanceof DeliveryException de && !de.retryAfter().isZero()) {
                    // the receiver said when to come back (Retry-After): honoured, within a bound of our own
                    delay = Math.max(delay, Math.min(de.retryAfter().toMillis(), MAX_RETRY_AFTER.toMillis()));
                }
                metrics.counter("cxr.delivery.retries", "destination", d.name()).increment();
                LOG.warnf("study %s to %s failed (attempt %d of %d), retry in %d ms: %s", study,
                        d.name(), n, retry.maxAttempts(), delay, e.getMessage());
                executors.get(d.name()).schedule(() -> attempt(item, n + 1, done), delay, TimeUnit.MILLISECONDS);
            } else {
                LOG.errorf("study %s to %s dead-lettered after %d attempt(s)%s: %s", study, d.name(), n,
                        retryable ? "" : ", not retryable", e.getMessage());
                Audit.record(Audit.Event.DEAD_LETTERED, study,
                        "destination=" + d.name() + " attempts=" + n);
                deadLetter(item, done, study, e.getMessage(),
                        e instanceof DeliveryException de ? de.status() : "", original, startOf(result));
            }
        }
    }

    private void deadLetter(PendingStore.Item item, CompletableFuture<Outcome> done, String study, String reason,
                            String status, byte[] original, long createdAt) {
        try {
            deadLetters.add(new DeadLetterStore.DeadLetter(UUID.randomUUID().toString(), item.destination(), study,
                    reason == null ? "unknown" : reason, status, System.currentTimeMillis(), original));
        } catch (RuntimeException e) {
            // keep the pending item: the next run resumes it rather than losing it
            LOG.errorf("dead letter of %s for %s not written, left pending: %s", item.id(), item.destination(), e.getMessage());
            release(item, done, new Outcome(false, createdAt));
            return;
        }
        deadLettered.incrementAndGet();
        metrics.counter("cxr.delivery", "destination", item.destination(), "outcome", "dead_lettered").increment();
        finish(item, done, new Outcome(false, createdAt));
    }

    private void finish(PendingStore.Item item, CompletableFuture<Outcome> done, Outcome outcome) {
        try {
            pending.remove(item);
        } catch (RuntimeException e) {
            // harmless: a leftover is resumed next run, and the ledger or the deterministic UIDs absorb it
            LOG.warnf("pending item %s of %s not removed: %s", item.id(), item.destination(), e.getMessage());
        }
        release(item, done, outcome);
    }

    private void release(PendingStore.Item item, CompletableFuture<Outcome> done, Outcome outcome) {
        inFlight.remove(key(item.destination(), item.id()));
        done.complete(outcome);
        // after the completion (and the end-to-end timer it triggers), so that depth 0 means settled
        depth.get(item.destination()).decrementAndGet();
    }

    /**
     * Re-submits the dead letters of one destination (or of all, when {@code destination} is null) to their
     * destination, through the pending store like a new result. A failing replay dead-letters it again with
     * the new reason. The future gives how many were replayed, once they are settled.
     */
    public CompletableFuture<Integer> replay(String destination) {
        List<CompletableFuture<Outcome>> all = new ArrayList<>();
        int count = 0;
        for (DeadLetterStore.DeadLetter l : deadLetters.list()) {
            if (destination != null && !destination.equals(l.destination())) {
                continue;
            }
            if (!destinations.containsKey(l.destination())) {
                continue;
            }
            // pending first, then forget the dead letter: a crash in between delivers twice, harmlessly
            all.addAll(handOver(l.studyResult(), List.of(l.destination())));
            deadLetters.remove(l.id());
            count++;
        }
        int replayed = count;
        return CompletableFuture.allOf(all.toArray(new CompletableFuture[0])).thenApply(v -> replayed);
    }

    @Override
    public void close() {
        executors.values().forEach(ScheduledExecutorService::shutdownNow);
        synchronized (this) {
            if (housekeeping != null) {
                housekeeping.shutdownNow();
            }
        }
    }
}
