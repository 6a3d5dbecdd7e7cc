package org.cxrgateway.queue;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import jakarta.enterprise.context.ApplicationScoped;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** Publishes study jobs and results, keyed by StudyInstanceUID so that one study stays in order. */
@ApplicationScoped
public class JobPublisher {

    private final MessageProducer producer;
    private final KafkaConfig config;
    private final Timer jobLatency;

    JobPublisher(MessageProducer producer, KafkaConfig config, MeterRegistry metrics) {
        this.producer = producer;
        this.config = config;
        this.jobLatency = Timer.builder("cxr_publish_latency").description("Time from send to broker ack (acks=all)")
                .tag("topic", "jobs").publishPercentiles(0.5, 0.95).register(metrics);
    }

    /**
     * Connects the producer to the topics this process publishes to at start (listener: jobs, worker: results),
     * in the background so that a broker still starting delays nothing, and the first study does not pay for it.
     */
    void warm(@jakarta.enterprise.event.Observes io.quarkus.runtime.StartupEvent event, org.cxrgateway.GatewayConfig gateway) {
        List<String> topics = new java.util.ArrayList<>();
        if (gateway.runs(org.cxrgateway.GatewayConfig.Role.LISTENER)) {
            topics.add(config.topics().jobs());
        }
        if (gateway.runs(org.cxrgateway.GatewayConfig.Role.WORKER)) {
            topics.add(config.topics().results());
        }
        if (topics.isEmpty()) {
            return;
        }
        Thread t = new Thread(() -> topics.forEach(producer::warm), "cxr-producer-warm-up");
        t.setDaemon(true);
        t.start();
    }

    public CompletableFuture<RecordMetadata> publish(StudyJob job) {
        long start = System.nanoTime();
        return producer.send(config.topics().jobs(), job.getStudy().getStudyInstanceUid(),
                        MessageCodec.encode(job), List.of(DeadLetters.header("cxr.job-id", job.getJobId())))
                .whenComplete((m, e) -> jobLatency.record(System.nanoTime() - start, TimeUnit.NANOSECONDS));
    }

    public CompletableFuture<RecordMetadata> publish(StudyResult result) {
        return publish(result, MessageCodec.encode(result));
    }

    /** A result already encoded (e.g. fitted to the message limit by message/MessageBudget). */
    public CompletableFuture<RecordMetadata> publish(StudyResult result, byte[] encoded) {
        return producer.send(config.topics().results(), result.getStudy().getStudyInstanceUid(),
                encoded, List.of(DeadLetters.header("cxr.job-id", result.getJobId())));
    }
}
