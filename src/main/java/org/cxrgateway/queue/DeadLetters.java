package org.cxrgateway.queue;

import io.micrometer.core.instrument.MeterRegistry;
import jakarta.enterprise.context.ApplicationScoped;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * The dead-letter topic: messages that cannot be processed (poison, wrong schema version) and
 * deliveries that exhausted their retries. The original bytes are kept so that nothing is lost
 * and a replay can send them again; headers say where they came from and why they are here.
 */
@ApplicationScoped
public class DeadLetters {

    public static final String SOURCE_TOPIC = "cxr.dlq.source-topic";
    public static final String REASON = "cxr.dlq.reason";
    public static final String STAGE = "cxr.dlq.stage";
    public static final String TIMESTAMP = "cxr.dlq.timestamp";

    private final MessageProducer producer;
    private final KafkaConfig config;
    private final MeterRegistry metrics;

    DeadLetters(MessageProducer producer, KafkaConfig config, MeterRegistry metrics) {
        this.producer = producer;
        this.config = config;
        this.metrics = metrics;
    }

    /**
     * @param stage who gave up: {@code worker}, {@code delivery:pacs-main}, ...
     * @param extraHeaders more context (for example a delivery destination); may be empty
     */
    public CompletableFuture<RecordMetadata> send(String sourceTopic, String stage, String key, byte[] value,
                                                  String reason, List<Header> extraHeaders) {
        List<Header> headers = new ArrayList<>(extraHeaders);
        headers.add(header(SOURCE_TOPIC, sourceTopic));
        headers.add(header(STAGE, stage));
        headers.add(header(REASON, reason));
        headers.add(header(TIMESTAMP, Long.toString(System.currentTimeMillis())));
        metrics.counter("cxr_dead_letters_total", "stage", stage).increment();
        return producer.send(config.topics().deadLetters(), key, value, headers);
    }

    public CompletableFuture<RecordMetadata> send(String sourceTopic, String stage, String key, byte[] value,
                                                  String reason) {
        return send(sourceTopic, stage, key, value, reason, List.of());
    }

    public static Header header(String name, String value) {
        return new RecordHeader(name, value == null ? new byte[0] : value.getBytes(StandardCharsets.UTF_8));
    }

    public static String headerValue(Iterable<Header> headers, String name) {
        String last = null;
        for (Header h : headers) {
            if (h.key().equals(name)) {
                last = new String(h.value(), StandardCharsets.UTF_8);
            }
        }
        return last;
    }
}
