package org.cxrgateway.queue;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.Producer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.CompletableFuture;

/**
 * The process's one Kafka producer (producers are thread-safe and batch better when shared).
 * A returned future completes when the broker has acknowledged the record with acks=all.
 */
@ApplicationScoped
public class MessageProducer {

    private final KafkaCluster cluster;
    private final MeterRegistry metrics;
    private final Map<String, AtomicLong> largest = new ConcurrentHashMap<>();
    /** Removed at shutdown, so that a later application in the same JVM (tests) registers its own, not reads ours. */
    private final List<Gauge> gauges = new java.util.concurrent.CopyOnWriteArrayList<>();
    private volatile Producer<String, byte[]> producer;

    MessageProducer(KafkaCluster cluster, MeterRegistry metrics) {
        this.cluster = cluster;
        this.metrics = metrics;
    }

    /** The largest value sent to a topic so far, bytes (gauge cxr_kafka_largest_message_bytes{topic}). */
    public long largestSent(String topic) {
        AtomicLong l = largest.get(topic);
        return l == null ? 0 : l.get();
    }

    public CompletableFuture<RecordMetadata> send(String topic, String key, byte[] value, List<Header> headers) {
        // the message-size bound (1 MiB) made visible: what the producer was actually given, per topic
        largest.computeIfAbsent(topic, t -> {
            AtomicLong l = new AtomicLong();
            gauges.add(Gauge.builder("cxr.kafka.largest.message.bytes", l, AtomicLong::get).tag("topic", t)
                    .strongReference(true).description("Largest message value this process sent to the topic")
                    .register(metrics));
            return l;
        }).accumulateAndGet(value == null ? 0 : value.length, Math::max);
        CompletableFuture<RecordMetadata> acked = new CompletableFuture<>();
        try {
            producer().send(new ProducerRecord<>(topic, null, key, value, headers), (metadata, error) -> {
                if (error != null) {
                    acked.completeExceptionally(error);
                } else {
                    acked.complete(metadata);
                }
            });
        } catch (RuntimeException e) {
            acked.completeExceptionally(e);
        }
        return acked;
    }

    /**
     * Creates the producer, connects and reads the topic's metadata now, so that the first real send does not
     * pay for them (about half a second measured on the first study's job). Blocks up to the producer's
     * max.block.ms; a failure only leaves that cost to the first send.
     */
    public void warm(String topic) {
        try {
            producer().partitionsFor(topic);
        } catch (RuntimeException e) {
            org.jboss.logging.Logger.getLogger(MessageProducer.class)
                    .infof("producer not warmed for %s (the first message pays its connection): %s", topic, e.toString());
        }
    }

    private Producer<String, byte[]> producer() {
        Producer<String, byte[]> p = producer;
        if (p == null) {
            synchronized (this) {
                if (producer == null) {
                    producer = new KafkaProducer<>(cluster.producerProperties());
                }
                p = producer;
            }
        }
        return p;
    }

    void onStop(@Observes ShutdownEvent event) {
        gauges.forEach(metrics::remove);
        Producer<String, byte[]> p = producer;
        if (p != null) {
            p.close(Duration.ofSeconds(10));
        }
    }
}
