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
        for (int i = 0; i < 3; i++) {
            producer.send(topic, "same-key", ("m" + i).getBytes(StandardCharsets.UTF_8), List.of()).get();
        }
        // The three records share a key, so one partition holds them; commit just past the first.
        try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(cluster.consumerProperties("cxr-lag-test"))) {
            var partitions = consumer.partitionsFor(topic).stream()
                    .map(p -> new TopicPartition(topic, p.partition())).toList();
            consumer.assign(partitions);
            consumer.seekToEnd(partitions);
            Map<TopicPartition, OffsetAndMetadata> commits = new java.util.HashMap<>();
            for (TopicPartition tp : partitions) {
                long end = consumer.position(tp, Duration.ofSeconds(10));
                commits.put(tp, new OffsetAndMetadata(end == 0 ? 0 : end - 2));
            }
            consumer.commitSync(commits);
        }
        assertEquals(2L, monitor.refresh("cxr-lag-test").get(topic));
        given().get("/q/metrics").then().statusCode(200)
                .body(containsString("cxr_kafka_consumer_lag{group=\"cxr-lag-test\""));
    }
}
