package org.cxrgateway.delivery;

import java.util.List;

/**
 * Where a result goes when a destination gave up on it. Kept behind an interface so that the Kafka
 * dead-letter topic can be added next to the file store that replay reads.
 */
public interface DeadLetterStore {

    /**
     * One dead letter: the original message bytes, so that replay rebuilds the same (deterministic) objects.
     *
     * @param status the receiver's own code for its last refusal (e.g. a DIMSE status "0xA900 (...)"), empty when
     *               it gave none (unreachable, or the reports could not be built)
     */
    record DeadLetter(String id, String destination, String studyInstanceUid, String reason, String status,
                      long atEpochMs, byte[] studyResult) {

        public DeadLetter {
            status = status == null ? "" : status;
        }
    }

    void add(DeadLetter letter);

    List<DeadLetter> list();

    /** Removes a dead letter once it has been taken for replay. */
    void remove(String id);
}
