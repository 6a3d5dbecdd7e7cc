package org.cxrgateway.ingest;

import jakarta.enterprise.context.ApplicationScoped;
import org.apache.kafka.common.errors.RecordBatchTooLargeException;
import org.apache.kafka.common.errors.RecordTooLargeException;
import org.apache.kafka.common.errors.RetriableException;
import org.cxrgateway.queue.JobPublisher;
import org.cxrgateway.queue.KafkaConfig;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.cxrgateway.message.StudyParts;
import org.cxrgateway.schema.v2.StudyJob;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Study jobs go to Kafka, one message per image ({@link StudyParts}). The call returns only after the broker
 * acknowledged every part with acks=all, so the assembler marks a study as published only when the whole job
 * is durable; a retry resends every part with the same jobId (delivery keeps the first copy of each). A part over the
 * producer's or the topic's message limit is {@link StudyJobSink.Rejected}: resending the same bytes
 * cannot succeed. Kafka's retriable errors (broker down, timeouts) are {@link StudyJobSink.Unavailable}.
 */
@ApplicationScoped
public class KafkaStudyJobSink implements StudyJobSink {

    private final JobPublisher publisher;
    private final KafkaConfig config;

    KafkaStudyJobSink(JobPublisher publisher, KafkaConfig config) {
        this.publisher = publisher;
        this.config = config;
    }

    @Override
    public void publish(StudyJob job) throws Exception {
        List<CompletableFuture<RecordMetadata>> acks = new ArrayList<>();
        // all parts are sent before any is awaited (the producer batches them); same key, so they stay in order
        for (StudyJob part : StudyParts.split(job)) {
            acks.add(publisher.publish(part));
        }
        try {
            CompletableFuture.allOf(acks.toArray(new CompletableFuture[0]))
                    .get(config.requestTimeout().toMillis() * 2, TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof RecordTooLargeException || cause instanceof RecordBatchTooLargeException) {
                throw new Rejected(cause.getClass().getSimpleName() + ": " + cause.getMessage(), cause);
            }
            if (cause instanceof RetriableException) {
                throw new Unavailable(cause.toString(), cause);
            }
            throw e;
        } catch (TimeoutException e) {
            throw new Unavailable("no acknowledgement from Kafka in time", e);
        }
    }
}
