package org.cxrgateway.delivery;

import org.cxrgateway.Audit;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.message.PoisonMessageException;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportWarmUp;
import org.cxrgateway.report.ReportException;
import org.cxrgateway.report.ReportSet;
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
    }

    private List<CompletableFuture<Outcome>> handOver(byte[] original, Collection<String> targets) {
        String id = PendingStore.idOf(original);
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
        ReportSet set;
        try {
            result = MessageCodec.decodeResult(original);
            set = builder.build(result);
        } catch (PoisonMessageException | ReportException | RuntimeException e) {
            // bad content will not improve with retries
            LOG.warnf("pending item %s cannot be rendered for %s: %s", item.id(), d.name(), e.getMessage());
            deadLetter(item, done, "?", "cannot build reports: " + e.getMessage(), "", original, 0);
            return;
        }
        try {
            d.deliver(set, ledger.view(d.name()));
            delivered.incrementAndGet();
            metrics.counter("cxr.delivery", "destination", d.name(), "outcome", "delivered").increment();
            LOG.infof("study %s delivered to %s (attempt %d)", set.studyInstanceUid(), d.name(), n);
            Audit.record(Audit.Event.DELIVERED, set.studyInstanceUid(), String.format("destination=%s objects=%d attempt=%d",
                    d.name(), set.dicom().size(), n));
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
                LOG.warnf("study %s to %s failed (attempt %d of %d), retry in %d ms: %s", set.studyInstanceUid(),
                        d.name(), n, retry.maxAttempts(), delay, e.getMessage());
                executors.get(d.name()).schedule(() -> attempt(item, n + 1, done), delay, TimeUnit.MILLISECONDS);
            } else {
                LOG.errorf("study %s to %s dead-lettered after %d attempt(s)%s: %s", set.studyInstanceUid(), d.name(), n,
                        retryable ? "" : ", not retryable", e.getMessage());
                Audit.record(Audit.Event.DEAD_LETTERED, set.studyInstanceUid(),
                        "destination=" + d.name() + " attempts=" + n);
                deadLetter(item, done, set.studyInstanceUid(), e.getMessage(),
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
    }
}
