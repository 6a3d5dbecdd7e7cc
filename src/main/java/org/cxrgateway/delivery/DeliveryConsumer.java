package org.cxrgateway.delivery;

import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.cxrgateway.GatewayConfig;
import org.cxrgateway.queue.DeadLetters;
import org.cxrgateway.queue.KafkaCluster;
import org.cxrgateway.queue.KafkaConfig;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.message.PoisonMessageException;
import org.cxrgateway.schema.v2.StudyResult;
import org.jboss.logging.Logger;

import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * The delivery role: reads results and hands each one over to {@link DeliveryService#accept}, which makes it
 * durable per destination; the offset is committed right after, without waiting for any destination. A
 * poison message goes to the dead-letter topic (acknowledged by the broker before its offset is committed).
 * If either hand-off fails, the partition is rewound to that record and retried after a pause, so nothing
 * received is lost; a redelivery is harmless (same pending id, ledger, deterministic UIDs).
 */
@ApplicationScoped
public class DeliveryConsumer {

    private static final Logger LOG = Logger.getLogger(DeliveryConsumer.class);
    private static final long HAND_OFF_RETRY_MS = 1000;

    @Inject
    GatewayConfig gateway;
    @Inject
    KafkaConfig kafka;
    @Inject
    DeliveryConfig config;
    @Inject
    KafkaCluster cluster;
    @Inject
    DeadLetters deadLetters;
    @Inject
    DeliveryService service;

    private volatile KafkaConsumer<String, byte[]> consumer;
    private volatile boolean running;
    private Thread thread;

    void start(@Observes StartupEvent e) {
        if (!gateway.runs(GatewayConfig.Role.DELIVERY)) {
            return;
        }
        service.warmUp();
        service.resume();
        running = true;
        thread = new Thread(this::loop, "delivery-consumer");
        thread.setDaemon(true);
        thread.start();
        LOG.infof("delivery consumer started on %s, destinations %s", kafka.topics().results(), service.describe());
    }

    void stop(@Observes ShutdownEvent e) throws InterruptedException {
        running = false;
        KafkaConsumer<String, byte[]> c = consumer;
        if (c != null) {
            c.wakeup();
        }
        if (thread != null) {
            thread.join(10_000);
        }
    }

    private void loop() {
        try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(cluster.consumerProperties(config.consumerGroup()))) {
            consumer = c;
            c.subscribe(List.of(kafka.topics().results()));
            while (running) {
                ConsumerRecords<String, byte[]> records = c.poll(Duration.ofSeconds(1));
                Map<TopicPartition, OffsetAndMetadata> done = new HashMap<>();
                boolean rewound = false;
                for (TopicPartition tp : records.partitions()) {
                    for (ConsumerRecord<String, byte[]> r : records.records(tp)) {
                        if (!handOver(r)) {
                            c.seek(tp, r.offset());
                            rewound = true;
                            break;
                        }
                        done.put(tp, new OffsetAndMetadata(r.offset() + 1));
                    }
                }
                if (!done.isEmpty()) {
                    c.commitSync(done);
                }
                if (rewound) {
                    Thread.sleep(HAND_OFF_RETRY_MS);
                }
            }
        } catch (WakeupException e) {
            if (running) {
                LOG.error("delivery consumer woken unexpectedly", e);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (RuntimeException e) {
            LOG.error("delivery consumer stopped", e);
        } finally {
            consumer = null;
        }
    }

    /** True once the record is durably someone else's responsibility (pending store or dead-letter topic). */
    private boolean handOver(ConsumerRecord<String, byte[]> r) {
        StudyResult result;
        try {
            result = MessageCodec.decodeResult(r.value());
        } catch (PoisonMessageException | RuntimeException bad) {
            LOG.warnf("result at %s-%d@%d is unreadable, dead-lettered: %s", r.topic(), r.partition(), r.offset(),
                    bad.getMessage());
            try {
                deadLetters.send(r.topic(), "delivery", r.key(), r.value(), "unreadable result: " + bad.getMessage())
                        .get(kafka.requestTimeout().toMillis() * 2, TimeUnit.MILLISECONDS);
                return true;
            } catch (Exception e) {
                LOG.errorf("poison result at %s-%d@%d not dead-lettered, will retry: %s", r.topic(), r.partition(),
                        r.offset(), e.toString());
                return false;
            }
        }
        try {
            service.accept(r.value(), result);
            return true;
        } catch (RuntimeException e) {
            LOG.errorf("result of study %s not handed over (%s), will retry", result.getStudy() == null ? "?"
                    : result.getStudy().getStudyInstanceUid(), e.toString());
            return false;
        }
    }
}
