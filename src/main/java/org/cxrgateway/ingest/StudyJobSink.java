package org.cxrgateway.ingest;

import org.cxrgateway.schema.v2.StudyJob;

/**
 * Where ready study jobs go (the Kafka producer in production). {@link #publish} returns only once
 * the job is durably accepted (Kafka: acknowledged with acks=all); the assembler then records the
 * job as published. Throwing means "not published", and what is thrown tells the assembler what to do:
 * {@link Rejected}: quarantine the study at once; {@link Unavailable}: retry later without counting an
 * attempt (the sink's own readiness reports the outage); anything else: retry, counted against
 * {@code cxr.assembly.max-publish-attempts}.
 */
public interface StudyJobSink {
    void publish(StudyJob job) throws Exception;

    /** The job can never be accepted as it is (e.g. larger than the broker's message limit). */
    final class Rejected extends Exception {
        public Rejected(String message, Throwable cause) {
            super(message, cause);
        }
    }

    /** The sink cannot be reached for now (e.g. the broker is down): not the study's fault. */
    final class Unavailable extends Exception {
        public Unavailable(String message, Throwable cause) {
            super(message, cause);
        }
    }
}
