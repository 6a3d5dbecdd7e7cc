package org.cxrgateway.queue;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The embedded broker is a real broker: acknowledged records survive its restart. */
class EmbeddedKafkaBrokerTest {

    @Test
    void acknowledgedRecordsSurviveARestart() throws Exception {
        Path dir = Files.createTempDirectory("cxr-kafka-restart");
        try {
            int port = EmbeddedKafkaBroker.freePort();
            int controllerPort = EmbeddedKafkaBroker.freePort();
            try (EmbeddedKafkaBroker broker = new EmbeddedKafkaBroker(dir, port, controllerPort, 1 << 20).start()) {
                try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, broker.bootstrapServers()))) {
                    admin.createTopics(List.of(new NewTopic("t", 1, (short) 1))).all().get();
                }
                Properties p = new Properties();
                p.put("bootstrap.servers", broker.bootstrapServers());
                p.put("acks", "all");
                try (KafkaProducer<String, String> producer = new KafkaProducer<>(p, new StringSerializer(), new StringSerializer())) {
                    for (int i = 0; i < 10; i++) {
                        producer.send(new ProducerRecord<>("t", "k" + i, "v" + i)).get();
                    }
                }
            }
            try (EmbeddedKafkaBroker broker = new EmbeddedKafkaBroker(dir, port, controllerPort, 1 << 20).start()) {
                Properties c = new Properties();
                c.put("bootstrap.servers", broker.bootstrapServers());
                c.put("group.id", "g");
                c.put("auto.offset.reset", "earliest");
                List<String> values = new ArrayList<>();
                try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(c, new StringDeserializer(), new StringDeserializer())) {
                    consumer.subscribe(List.of("t"));
                    long deadline = System.currentTimeMillis() + 30_000;
                    while (values.size() < 10 && System.currentTimeMillis() < deadline) {
                        ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(500));
                        records.forEach(r -> values.add(r.value()));
                    }
                }
                assertEquals(List.of("v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"), values);
            }
        } finally {
            EmbeddedKafkaTestResource.deleteQuietly(dir);
        }
    }
}
