package org.cxrgateway.delivery;

import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportException;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.schema.v1.StudyResult;
import org.jboss.logging.Logger;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Builds the reports of a result and hands them to every destination. Each destination has its own scheduler,
 * and a retry is a scheduled task rather than a sleeping thread: a down PACS delays only its own deliveries, and
 * never the FHIR server or new studies. The returned future completes once every destination has either
 * acknowledged or dead-lettered, which is when the caller may commit the message.
 */
public final class DeliveryService implements AutoCloseable {

    private static final Logger LOG = Logger.getLogger(DeliveryService.class);

    private final ReportBuilder builder;
    private final Map<String, Destination> destinations = new LinkedHashMap<>();
    private final Map<String, ScheduledExecutorService> executors = new LinkedHashMap<>();
    private final DeliveryLedger ledger;
    private final DeadLetterStore deadLetters;
    private final RetryPolicy retry;
    private final AtomicInteger delivered = new AtomicInteger();
    private final AtomicInteger deadLettered = new AtomicInteger();

    public DeliveryService(ReportBuilder builder, List<Destination> destinations, DeliveryLedger ledger,
                           DeadLetterStore deadLetters, RetryPolicy retry) {
        this.builder = builder;
        for (Destination d : destinations) {
            this.destinations.put(d.name(), d);
            this.executors.put(d.name(), Executors.newSingleThreadScheduledExecutor(r -> {
                Thread t = new Thread(r, "delivery-" + d.name());
                t.setDaemon(true);
                return t;
            }));
        }
        this.ledger = ledger;
        this.deadLetters = deadLetters;
        this.retry = retry;
    }

    public List<DeadLetterStore.DeadLetter> deadLetters() {
        return deadLetters.list();
    }

    public List<String> destinationNames() {
        return List.copyOf(destinations.keySet());
    }

    public int deliveredCount() {
        return delivered.get();
    }

    public int deadLetteredCount() {
        return deadLettered.get();
    }

    /** Delivers to every destination. */
    public CompletableFuture<Void> submit(StudyResult result) {
        return submit(result, destinations.keySet());
    }

    private CompletableFuture<Void> submit(StudyResult result, Iterable<String> targets) {
        byte[] original = bytes(result);
        ReportSet set;
        try {
            set = builder.build(result);
        } catch (ReportException | RuntimeException e) {
            // bad content will not improve with retries: one dead letter, no destination attempted
            String study = result.getStudy() == null ? "?" : result.getStudy().getStudyInstanceUid();
            LOG.warnf("result of study %s cannot be rendered: %s", study, e.getMessage());
            deadLetter("report", study, "cannot build reports: " + e.getMessage(), original);
            return CompletableFuture.completedFuture(null);
        }
        List<CompletableFuture<Void>> all = new ArrayList<>();
        for (String name : targets) {
            Destination d = destinations.get(name);
            if (d == null) {
                continue;
            }
            CompletableFuture<Void> done = new CompletableFuture<>();
            all.add(done);
            executors.get(name).execute(() -> attempt(d, set, original, 1, done));
        }
        return CompletableFuture.allOf(all.toArray(new CompletableFuture[0]));
    }

    private void attempt(Destination d, ReportSet set, byte[] original, int n, CompletableFuture<Void> done) {
        try {
            d.deliver(set, ledger.view(d.name()));
            delivered.incrementAndGet();
            LOG.infof("study %s delivered to %s (attempt %d)", set.studyInstanceUid(), d.name(), n);
            done.complete(null);
        } catch (DeliveryException | RuntimeException e) {
            boolean retryable = !(e instanceof DeliveryException de) || de.retryable();
            if (retryable && n < retry.maxAttempts()) {
                long delay = retry.delayMillis(n + 1);
                LOG.warnf("study %s to %s failed (attempt %d of %d), retry in %d ms: %s", set.studyInstanceUid(),
                        d.name(), n, retry.maxAttempts(), delay, e.getMessage());
                executors.get(d.name()).schedule(() -> attempt(d, set, original, n + 1, done), delay, TimeUnit.MILLISECONDS);
            } else {
                LOG.errorf("study %s to %s dead-lettered after %d attempt(s): %s", set.studyInstanceUid(), d.name(), n,
                        e.getMessage());
                try {
                    deadLetter(d.name(), set.studyInstanceUid(), e.getMessage(), original);
                } finally {
                    done.complete(null);
                }
            }
        }
    }

    private void deadLetter(String destination, String study, String reason, byte[] original) {
        deadLettered.incrementAndGet();
        deadLetters.add(new DeadLetterStore.DeadLetter(UUID.randomUUID().toString(), destination, study,
                reason == null ? "unknown" : reason, System.currentTimeMillis(), original));
    }

    /**
     * Re-submits the dead letters of one destination (or of all, when {@code destination} is null) to their
     * destination. Each is removed first; a failing replay dead-letters it again with the new reason.
     */
    public CompletableFuture<Integer> replay(String destination) {
        List<CompletableFuture<Void>> all = new ArrayList<>();
        int n = 0;
        for (DeadLetterStore.DeadLetter l : deadLetters.list()) {
            if (destination != null && !destination.equals(l.destination())) {
                continue;
            }
            if (!destinations.containsKey(l.destination())) {
                continue;
            }
            StudyResult r;
            try {
                r = StudyResult.fromByteBuffer(ByteBuffer.wrap(l.studyResult()));
            } catch (Exception e) {
                LOG.warnf("dead letter %s is not a readable result, kept: %s", l.id(), e.getMessage());
                continue;
            }
            deadLetters.remove(l.id());
            all.add(submit(r, List.of(l.destination())));
            n++;
        }
        int count = n;
        return CompletableFuture.allOf(all.toArray(new CompletableFuture[0])).thenApply(v -> count);
    }

    private static byte[] bytes(StudyResult r) {
        try {
            ByteBuffer b = r.toByteBuffer();
            byte[] a = new byte[b.remaining()];
            b.get(a);
            return a;
        } catch (Exception e) {
            return new byte[0];
        }
    }

    @Override
    public void close() {
        executors.values().forEach(ScheduledExecutorService::shutdownNow);
    }
}
