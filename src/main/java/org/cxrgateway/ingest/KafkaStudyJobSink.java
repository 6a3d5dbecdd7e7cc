package org.cxrgateway.ingest;

import jakarta.enterprise.context.ApplicationScoped;
import org.cxrgateway.queue.JobPublisher;
import org.cxrgateway.queue.KafkaConfig;
import org.cxrgateway.schema.v1.StudyJob;

import java.util.concurrent.TimeUnit;

/**
 * Study jobs go to Kafka. The call returns only after the broker acknowledged the job with
 * acks=all, so the assembler marks a study as published only when the job is durable.
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
        publisher.publish(job).get(config.requestTimeout().toMillis() * 2, TimeUnit.MILLISECONDS);
    }
}
