package org.cxrgateway.ingest;

import org.cxrgateway.schema.v1.StudyJob;

/**
 * Where ready study jobs go (the Kafka producer in production). {@link #publish} returns only once
 * the job is durably accepted (Kafka: acknowledged with acks=all); the assembler then records the
 * job as published. Throwing means "not published": the assembler retries later.
 */
public interface StudyJobSink {
    void publish(StudyJob job) throws Exception;
}
