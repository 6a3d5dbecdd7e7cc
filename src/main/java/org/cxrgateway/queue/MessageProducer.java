package org.cxrgateway.queue;

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
import java.util.concurrent.CompletableFuture;

/**
 * The process's one Kafka producer (producers are thread-safe and batch better when shared).
 * A returned future completes when the broker has acknowledged the record with acks=all.
 */
@ApplicationScoped
public class MessageProducer {

    private final KafkaCluster cluster;
    private volatile Producer<String, byte[]> producer;

    MessageProducer(KafkaCluster cluster) {
        this.cluster = cluster;
    }

    public CompletableFuture<RecordMetadata> send(String topic, String key, byte[] value, List<Header> headers) {
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
        Producer<String, byte[]> p = producer;
        if (p != null) {
            p.close(Duration.ofSeconds(10));
        }
    }
}
