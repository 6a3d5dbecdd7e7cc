package org.cxrgateway.inference;

import org.cxrgateway.Audit;

import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.cxrgateway.GatewayConfig;
import org.cxrgateway.queue.DeadLetters;
import org.cxrgateway.queue.KafkaCluster;
import org.cxrgateway.message.MessageBudget;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.queue.JobPublisher;
import org.cxrgateway.message.PoisonMessageException;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;
import org.jboss.logging.Logger;
import org.jboss.logging.MDC;

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The worker: a consumer in group cxr.inference.group-id on the jobs topic. At-least-once: a job's
 * offset is committed only after its StudyResult (or, for a poison message, its dead letter) is
 * acknowledged with acks=all, and only up to the lowest offset still in flight, so a crash replays
 * unfinished jobs (consumers dedupe on jobId). Poison messages never stall a partition: they go to
 * the dead-letter topic with the reason and count as done. A failed produce stops the worker
 * without committing, so the job is redelivered rather than lost.
 */
@ApplicationScoped
public class InferenceWorker {

    private static final Logger LOG = Logger.getLogger(InferenceWorker.class);
    /** Pause fetching when this many jobs are in flight: bounds memory and keeps rebalances quick. */
    static final int MAX_IN_FLIGHT = 64;

    private final KafkaCluster cluster;
    private final JobPublisher publisher;
    private final DeadLetters deadLetters;
    private final ModelRegistry registry;
    private final InferenceConfig config;
    private final GatewayConfig gateway;
    private final MeterRegistry metrics;

    private final ConcurrentLinkedQueue<Done> completions = new ConcurrentLinkedQueue<>();
    private final Map<TopicPartition, TreeMap<Long, Boolean>> pending = new HashMap<>();
    private final AtomicInteger inFlight = new AtomicInteger();
    private volatile boolean running;
    private volatile Throwable fatal;
    private volatile KafkaConsumer<String, byte[]> consumer;
    private Thread thread;

    private record Done(TopicPartition tp, long offset) {
    }

    InferenceWorker(KafkaCluster cluster, JobPublisher publisher, DeadLetters deadLetters, ModelRegistry registry,
                    InferenceConfig config, GatewayConfig gateway, MeterRegistry metrics) {
        this.cluster = cluster;
        this.publisher = publisher;
        this.deadLetters = deadLetters;
        this.registry = registry;
        this.config = config;
        this.gateway = gateway;
        this.metrics = metrics;
    }

    void onStart(@Observes StartupEvent event) {
        if (!gateway.runs(GatewayConfig.Role.WORKER)) {
            return;
        }
        running = true;
        thread = new Thread(this::run, "cxr-inference-worker");
        thread.setDaemon(true);
        thread.start();
    }

    void onStop(@Observes ShutdownEvent event) {
        running = false;
        KafkaConsumer<String, byte[]> c = consumer;
        if (c != null) {
            c.wakeup();
        }
        if (thread != null) {
            try {
                thread.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Jobs consumed and not yet committed. */
    public int inFlight() {
        return inFlight.get();
    }

    private void run() {
        MicroBatcher batcher;
        try {
            batcher = registry.ready().join();
        } catch (RuntimeException e) {
            LOG.error("worker not started: the inference models did not load");
            return;
        }
        String topic = cluster.config().topics().jobs();
        try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(cluster.consumerProperties(config.groupId()))) {
            consumer = c;
            c.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    commitDone(c);
                    partitions.forEach(pending::remove);
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                }
            });
            LOG.infof("worker consuming %s as group %s (max batch %d, max wait %s)", topic, config.groupId(), config.maxBatch(), config.maxWait());
            while (running && fatal == null) {
                if (inFlight.get() >= MAX_IN_FLIGHT) {
                    c.pause(c.assignment());
                } else if (!c.paused().isEmpty()) {
                    c.resume(c.paused());
                }
                for (ConsumerRecord<String, byte[]> r : c.poll(Duration.ofMillis(50))) {
                    handle(r, batcher);
                }
                commitDone(c);
            }
            if (fatal == null) {
                commitDone(c);
            }
        } catch (WakeupException e) {
            // shutdown
        } catch (RuntimeException e) {
            LOG.error("worker stopped", e);
        } finally {
            consumer = null;
        }
        if (fatal != null) {
            LOG.errorf("worker stopped without committing unacknowledged jobs: %s", fatal.getMessage());
        }
    }

    private void handle(ConsumerRecord<String, byte[]> r, MicroBatcher batcher) {
        TopicPartition tp = new TopicPartition(r.topic(), r.partition());
        pending.computeIfAbsent(tp, k -> new TreeMap<>()).put(r.offset(), Boolean.FALSE);
        inFlight.incrementAndGet();
        StudyJob job;
        try {
            job = MessageCodec.decodeJob(r.value());
            batcher.submit(job, new MicroBatcher.Sink() {
                @Override
                public void done(StudyJob j, StudyResult result) {
                    publish(tp, r, j, result);
                }

                @Override
                public void failed(StudyJob j, Exception error) {
                    // the engine failed on a batch: not the message's fault, so no dead letter; stop and
                    // let the job be redelivered to a healthy worker
                    fatal = error;
                    LOG.errorf("inference failed for job %s: %s", j.getJobId(), error.getMessage());
                }
            });
        } catch (PoisonMessageException | IllegalArgumentException e) {
            poison(tp, r, e.getMessage());
        }
    }

    private void publish(TopicPartition tp, ConsumerRecord<String, byte[]> r, StudyJob job, StudyResult result) {
        MDC.put("study", job.getStudy().getStudyInstanceUid());
        try {
            MessageBudget.Fitted fitted = MessageBudget.fit(result, cluster.config().maxMessageBytes());
            if (fitted.droppedGuided() > 0) {
                metrics.counter("cxr_inference_guided_dropped_total").increment(fitted.droppedGuided());
                LOG.warnf("job %s part %d: %d guided Grad-CAM map(s) left out to keep the result within %d bytes",
                        job.getJobId(), job.getPartIndex(), fitted.droppedGuided(), cluster.config().maxMessageBytes());
            }
            // the publisher keys the result by study and sets the cxr.job-id header, as it does for jobs
            publisher.publish(result, fitted.encoded()).whenComplete((md, err) -> {
                if (err != null) {
                    fatal = err;
                    LOG.errorf("result for job %s not acknowledged: %s", job.getJobId(), err.getMessage());
                } else {
                    Audit.record(Audit.Event.SCORED, job.getStudy().getStudyInstanceUid(), String.format(
                            "job=%s images=%d engine_ms=%.1f batch=%d", job.getJobId(), result.getImages().size(),
                            result.getInferenceMs(), result.getBatchSize()));
                    metrics.counter("cxr_inference_studies_total").increment();
                    metrics.counter("cxr_inference_images_total").increment(result.getImages().size());
                    completions.add(new Done(tp, r.offset()));
                }
            });
        } finally {
            MDC.remove("study");
        }
    }

    private void poison(TopicPartition tp, ConsumerRecord<String, byte[]> r, String reason) {
        LOG.warnf("job at %s offset %d dead-lettered: %s", tp, r.offset(), reason);
        Audit.record(Audit.Event.DEAD_LETTERED, r.key(), "stage=worker offset=" + r.offset());
        metrics.counter("cxr_inference_poison_total").increment();
        deadLetters.send(r.topic(), "worker", r.key(), r.value(), reason).whenComplete((md, err) -> {
            if (err != null) {
                fatal = err;
            } else {
                completions.add(new Done(tp, r.offset()));
            }
        });
    }

    /** Marks acknowledged offsets and commits, per partition, up to the first one still in flight. */
    private void commitDone(KafkaConsumer<String, byte[]> c) {
        Done d;
        while ((d = completions.poll()) != null) {
            TreeMap<Long, Boolean> m = pending.get(d.tp());
            if (m != null && m.containsKey(d.offset())) {
                m.put(d.offset(), Boolean.TRUE);
            }
            inFlight.decrementAndGet();
        }
        Map<TopicPartition, OffsetAndMetadata> commit = new HashMap<>();
        for (var e : pending.entrySet()) {
            TreeMap<Long, Boolean> m = e.getValue();
            Long last = null;
            while (!m.isEmpty() && m.firstEntry().getValue()) {
                last = m.pollFirstEntry().getKey();
            }
            if (last != null) {
                commit.put(e.getKey(), new OffsetAndMetadata(last + 1));
            }
        }
        if (!commit.isEmpty()) {
            c.commitSync(commit);
        }
    }
}
