package org.cxrgateway.delivery;

import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.errors.WakeupException;
import org.cxrgateway.GatewayConfig;
import org.cxrgateway.queue.DeadLetters;
import org.cxrgateway.queue.KafkaCluster;
import org.cxrgateway.queue.KafkaConfig;
import org.cxrgateway.queue.MessageCodec;
import org.jboss.logging.Logger;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * The delivery role: reads results, builds and delivers the reports, and commits a batch only once every
 * destination has acknowledged or dead-lettered each of its results (at-least-once; the deterministic UIDs
 * and the ledger make a redelivery harmless).
 */
@ApplicationScoped
public class DeliveryConsumer {

    private static final Logger LOG = Logger.getLogger(DeliveryConsumer.class);

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
        running = true;
        thread = new Thread(this::loop, "delivery-consumer");
        thread.setDaemon(true);
        thread.start();
        LOG.infof("delivery consumer started on %s, destinations %s", kafka.topics().results(), service.destinationNames());
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
                if (records.isEmpty()) {
                    continue;
                }
                List<CompletableFuture<Void>> pending = new ArrayList<>();
                for (ConsumerRecord<String, byte[]> r : records) {
                    try {
                        pending.add(service.submit(MessageCodec.decodeResult(r.value())));
                    } catch (Exception bad) {
                        LOG.warnf("result at %s-%d@%d is unreadable, dead-lettered: %s", r.topic(), r.partition(),
                                r.offset(), bad.getMessage());
                        deadLetters.send(r.topic(), "delivery", r.key(), r.value(), "unreadable result: " + bad.getMessage());
                    }
                }
                // bounded: every destination settles within its retry budget
                CompletableFuture.allOf(pending.toArray(new CompletableFuture[0])).join();
                c.commitSync();
            }
        } catch (WakeupException e) {
            if (running) {
                LOG.error("delivery consumer woken unexpectedly", e);
            }
        } catch (RuntimeException e) {
            LOG.error("delivery consumer stopped", e);
        } finally {
            consumer = null;
        }
    }
}
