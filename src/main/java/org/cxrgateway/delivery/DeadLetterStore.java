package org.cxrgateway.delivery;

import java.util.List;

/**
 * Where a result goes when a destination gave up on it. Kept behind an interface so that the Kafka
 * dead-letter topic can be added next to the file store that replay reads.
 */
public interface DeadLetterStore {

    /** One dead letter: the original message bytes, so that replay rebuilds the same (deterministic) objects. */
    record DeadLetter(String id, String destination, String studyInstanceUid, String reason, long atEpochMs,
                      byte[] studyResult) {
    }

    void add(DeadLetter letter);

    List<DeadLetter> list();

    /** Removes a dead letter once it has been taken for replay. */
    void remove(String id);
}
