package org.cxrgateway.delivery;

import org.cxrgateway.queue.DeadLetters;
import org.jboss.logging.Logger;

import java.util.List;

/**
 * Keeps dead letters in the local store that replay reads, and also publishes each one to the dead-letter
 * topic, so that operators see every failure in one place whichever process had it.
 */
final class KafkaMirroredDeadLetterStore implements DeadLetterStore {

    private static final Logger LOG = Logger.getLogger(KafkaMirroredDeadLetterStore.class);

    private final DeadLetterStore local;
    private final DeadLetters topic;
    private final String sourceTopic;

    KafkaMirroredDeadLetterStore(DeadLetterStore local, DeadLetters topic, String sourceTopic) {
        this.local = local;
        this.topic = topic;
        this.sourceTopic = sourceTopic;
    }

    @Override
    public void add(DeadLetter l) {
        local.add(l);
        try {
            topic.send(sourceTopic, "delivery:" + l.destination(), l.studyInstanceUid(), l.studyResult(), l.reason(),
                    List.of(DeadLetters.header("cxr.dlq.destination", l.destination()),
                            DeadLetters.header("cxr.dlq.id", l.id())));
        } catch (RuntimeException e) {
            // the local copy is what replay uses; a broker hiccup must not lose it
            LOG.warnf("dead letter %s kept locally, not published: %s", l.id(), e.getMessage());
        }
    }

    @Override
    public List<DeadLetter> list() {
        return local.list();
    }

    @Override
    public void remove(String id) {
        local.remove(id);
    }
}
