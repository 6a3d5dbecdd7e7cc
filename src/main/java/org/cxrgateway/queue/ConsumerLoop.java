package org.cxrgateway.queue;

import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.jboss.logging.Logger;

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The one consumer loop of the gateway's roles (worker on the jobs topic, delivery on the results topic):
 * subscribe, poll, pause while too much is in flight, poison to the dead-letter topic, and one commit policy:
 * per partition, offsets are committed in order, only up to the first record not yet done. What "done" means
 * is the handler's: the worker's result acknowledged by the broker (it acks later, from another thread), or
 * delivery's durable hand-off (done at once). A handler may ask for a record to be retried: the partition is
 * rewound to it and polled again after a pause, so nothing received is lost. A poison record is done once its
 * dead letter is acknowledged; if that fails, the record is retried like any other.
 */
public final class ConsumerLoop {

    private static final Logger LOG = Logger.getLogger(ConsumerLoop.class);

    /** What became of a record handed to the handler. */
    public enum Disposition {
        /** Durably someone else's now: may be committed. */
        DONE,
        /** The handler calls the given ack once it is durably done (any thread). */
        PENDING,
        /** Not handed off: rewind the partition to this record and try again after the retry pause. */
        RETRY
    }

    /** A record the handler cannot read: it goes to the dead-letter topic with the reason. */
    public static final class Poison extends Exception {
        public Poison(String reason) {
            super(reason);
        }
    }

    public interface Handler {
        Disposition handle(ConsumerRecord<String, byte[]> record, Runnable ack) throws Poison;

        /** Called once a poison record's dead letter is acknowledged (metrics, audit). */
        default void deadLettered(ConsumerRecord<String, byte[]> record, String reason) {
        }
    }

    /** The consumer's settings: name (thread, logs), stage (dead-letter header), topic, group properties and bounds. */
    public record Settings(String name, String stage, String topic, Properties consumerProperties, int maxInFlight,
                           Duration retryPause, Duration deadLetterTimeout) {
    }

    private record Ack(TopicPartition tp, long offset) {
    }

    private final Settings settings;
    private final DeadLetters deadLetters;
    private final Handler handler;
    private final ConcurrentLinkedQueue<Ack> acks = new ConcurrentLinkedQueue<>();
    private final Map<TopicPartition, TreeMap<Long, Boolean>> pending = new HashMap<>();
    private final AtomicInteger inFlight = new AtomicInteger();
    private volatile boolean running;
    private volatile Throwable fatal;
    private volatile KafkaConsumer<String, byte[]> consumer;
    private Thread thread;

    public ConsumerLoop(Settings settings, DeadLetters deadLetters, Handler handler) {
        this.settings = settings;
        this.deadLetters = deadLetters;
        this.handler = handler;
    }

    public void start() {
        running = true;
        thread = new Thread(this::run, settings.name());
        thread.setDaemon(true);
        thread.start();
    }

    /** Stops polling, commits what is done (unless failed) and closes the consumer. */
    public void stop() {
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

    /**
     * Stops the loop without committing anything not yet committed (e.g. the engine failed or a result was
     * not acknowledged): the records are redelivered, to this process after a restart or to another one.
     */
    public void fail(Throwable error) {
        if (fatal == null) {
            fatal = error;
        }
    }

    /** Records consumed and not yet done. */
    public int inFlight() {
        return inFlight.get();
    }

    private void run() {
        try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(settings.consumerProperties())) {
            consumer = c;
            c.subscribe(List.of(settings.topic()), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                    if (fatal == null) {
                        commitDone(c);
                    }
                    for (TopicPartition tp : partitions) {
                        TreeMap<Long, Boolean> m = pending.remove(tp);
                        if (m != null) {
                            inFlight.addAndGet(-(int) m.values().stream().filter(done -> !done).count());
                        }
                    }
                }

                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                }
            });
            while (running && fatal == null) {
                if (inFlight.get() >= settings.maxInFlight()) {
                    c.pause(c.assignment());
                } else if (!c.paused().isEmpty()) {
                    c.resume(c.paused());
                }
                boolean retry = poll(c);
                commitDone(c);
                if (retry) {
                    Thread.sleep(settings.retryPause().toMillis());
                }
            }
            if (fatal == null) {
                commitDone(c);
            }
        } catch (WakeupException e) {
            if (running) {
                LOG.errorf("%s woken unexpectedly", settings.name());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            LOG.errorf(e, "%s stopped", settings.name());
        } finally {
            consumer = null;
        }
        if (fatal != null) {
            LOG.errorf("%s stopped without committing unfinished records: %s", settings.name(), fatal.getMessage());
        }
    }

    /** One poll; true when a partition was rewound for a retry. */
    private boolean poll(KafkaConsumer<String, byte[]> c) {
        ConsumerRecords<String, byte[]> records = c.poll(Duration.ofMillis(50));
        Set<TopicPartition> rewound = new HashSet<>();
        for (TopicPartition tp : records.partitions()) {
            for (ConsumerRecord<String, byte[]> r : records.records(tp)) {
                TreeMap<Long, Boolean> m = pending.computeIfAbsent(tp, k -> new TreeMap<>());
                m.put(r.offset(), Boolean.FALSE);
                inFlight.incrementAndGet();
                Ack ack = new Ack(tp, r.offset());
                Disposition d;
                try {
                    d = handler.handle(r, () -> acks.add(ack));
                } catch (Poison p) {
                    d = deadLetter(r, p.getMessage());
                }
                if (d == Disposition.DONE) {
                    acks.add(ack);
                } else if (d == Disposition.RETRY) {
                    m.remove(r.offset());
                    inFlight.decrementAndGet();
                    c.seek(tp, r.offset());
                    rewound.add(tp);
                    break;
                }
            }
        }
        return !rewound.isEmpty();
    }

    private Disposition deadLetter(ConsumerRecord<String, byte[]> r, String reason) {
        LOG.warnf("%s: record at %s-%d@%d dead-lettered: %s", settings.name(), r.topic(), r.partition(), r.offset(), reason);
        try {
            deadLetters.send(r.topic(), settings.stage(), r.key(), r.value(), reason)
                    .get(settings.deadLetterTimeout().toMillis(), TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            LOG.errorf("%s: poison record at %s-%d@%d not dead-lettered, will retry: %s", settings.name(), r.topic(),
                    r.partition(), r.offset(), e.toString());
            return Disposition.RETRY;
        }
        handler.deadLettered(r, reason);
        return Disposition.DONE;
    }

    /** Marks acknowledged offsets and commits, per partition, up to the first one not yet done. */
    private void commitDone(KafkaConsumer<String, byte[]> c) {
        Ack a;
        while ((a = acks.poll()) != null) {
            TreeMap<Long, Boolean> m = pending.get(a.tp());
            if (m != null && Boolean.FALSE.equals(m.get(a.offset()))) {
                m.put(a.offset(), Boolean.TRUE);
                inFlight.decrementAndGet();
            }
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
