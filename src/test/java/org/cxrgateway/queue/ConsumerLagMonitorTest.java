package org.cxrgateway.queue;

import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertEquals;

@QuarkusTest
@WithTestResource(EmbeddedKafkaTestResource.class)
class ConsumerLagMonitorTest {

    @Inject
    MessageProducer producer;
    @Inject
    KafkaCluster cluster;
    @Inject
    ConsumerLagMonitor monitor;

    @Test
    void lagIsEndOffsetMinusCommittedOffset() throws Exception {
        String topic = cluster.config().topics().deadLetters();
        try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(cluster.consumerProperties("cxr-lag-test"))) {
            var partitions = consumer.partitionsFor(topic).stream()
                    .map(p -> new TopicPartition(topic, p.partition())).toList();
            // Other tests may have left records on this topic: the group starts at today's end offsets.
            Map<TopicPartition, OffsetAndMetadata> commits = new java.util.HashMap<>();
            consumer.endOffsets(partitions, Duration.ofSeconds(10))
                    .forEach((tp, end) -> commits.put(tp, new OffsetAndMetadata(end)));
            // Three records with one key land on one partition; the group consumes just the first.
            int partition = -1;
            for (int i = 0; i < 3; i++) {
                partition = producer.send(topic, "same-key", ("m" + i).getBytes(StandardCharsets.UTF_8), List.of())
                        .get().partition();
            }
            TopicPartition tp = new TopicPartition(topic, partition);
            commits.put(tp, new OffsetAndMetadata(commits.get(tp).offset() + 1));
            consumer.commitSync(commits);
        }
        assertEquals(2L, monitor.refresh("cxr-lag-test").get(topic));
        given().get("/q/metrics").then().statusCode(200)
                .body(containsString("cxr_kafka_consumer_lag{group=\"cxr-lag-test\""));
    }
}
