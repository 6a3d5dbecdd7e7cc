package org.cxrgateway.queue;

import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.annotation.Priority;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.cxrgateway.GatewayConfig;
import org.jboss.logging.Logger;

import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

/**
 * The Kafka cluster this process talks to: the configured one, or an embedded broker started on
 * loopback when none is configured. Either way every client is built from the same properties.
 */
@ApplicationScoped
public class KafkaCluster {

    private static final Logger LOG = Logger.getLogger(KafkaCluster.class);

    private final KafkaConfig config;
    private final GatewayConfig gateway;
    private EmbeddedKafkaBroker embedded;
    private String bootstrapServers;
    private Admin admin;

    KafkaCluster(KafkaConfig config, GatewayConfig gateway) {
        this.config = config;
        this.gateway = gateway;
    }

    /** Runs before the listener, the workers and delivery start (they observe at default priority). */
    void onStart(@Observes @Priority(10) StartupEvent event) {
        if (gateway.runsAnyRole()) {
            bootstrapServers();
        }
    }

    void onStop(@Observes ShutdownEvent event) {
        synchronized (this) {
            if (admin != null) {
                admin.close(java.time.Duration.ofSeconds(2));
                admin = null;
            }
        }
        stopEmbedded();
    }

    /** The process's one admin client (thread-safe), for health checks and lag metrics. */
    public synchronized Admin admin() {
        if (admin == null) {
            admin = Admin.create(adminProperties());
        }
        return admin;
    }

    /** The cluster's bootstrap servers; starts the embedded broker and creates topics on first use. */
    public synchronized String bootstrapServers() {
        if (bootstrapServers == null) {
            bootstrapServers = config.bootstrapServers().orElseGet(this::startEmbedded);
            createTopics();
        }
        return bootstrapServers;
    }

    public boolean isEmbedded() {
        return embedded != null;
    }

    public KafkaConfig config() {
        return config;
    }

    /** Idempotent, acks=all: a message is acknowledged only once it is in the log of every in-sync replica. */
    public Properties producerProperties() {
        Properties p = common();
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, "5");
        p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, Integer.toString(config.maxMessageBytes()));
        p.put(ProducerConfig.LINGER_MS_CONFIG, "2");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, Long.toString(Math.max(
                config.requestTimeout().toMillis() * 2, 30_000)));
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return p;
    }

    /** Manual commits; bounded polls so that a consumer never holds more work than it can finish. */
    public Properties consumerProperties(String groupId) {
        Properties p = common();
        p.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Integer.toString(config.maxPollRecords()));
        p.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, Integer.toString(config.maxMessageBytes()));
        p.put(ConsumerConfig.FETCH_MAX_BYTES_CONFIG, Integer.toString(config.maxMessageBytes() * 2));
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return p;
    }

    public Properties adminProperties() {
        return common();
    }

    private Properties common() {
        Properties p = new Properties();
        p.putAll(config.client());
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers());
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, Long.toString(config.requestTimeout().toMillis()));
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, Long.toString(config.requestTimeout().toMillis()));
        return p;
    }

    private String startEmbedded() {
        try {
            embedded = new EmbeddedKafkaBroker(gateway.dataDir().resolve("kafka"),
                    config.embedded().port(), config.embedded().controllerPort(), config.maxMessageBytes()).start();
        } catch (Exception e) {
            throw new IllegalStateException("cannot start the embedded Kafka broker", e);
        }
        LOG.infof("no cxr.kafka.bootstrap-servers configured: embedded Kafka broker on %s, log in %s",
                embedded.bootstrapServers(), embedded.logDir());
        return embedded.bootstrapServers();
    }

    private void createTopics() {
        Map<String, String> topicConfig = Map.of(
                "max.message.bytes", Integer.toString(config.maxMessageBytes()),
                "min.insync.replicas", Integer.toString(Math.max(1, config.replicationFactor() - 1)));
        List<NewTopic> topics = List.of(config.topics().jobs(), config.topics().results(), config.topics().deadLetters())
                .stream()
                .map(name -> new NewTopic(name, config.partitions(), config.replicationFactor()).configs(topicConfig))
                .toList();
        Properties p = new Properties();
        p.putAll(config.client());
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrapServers);
        try (Admin admin = Admin.create(p)) {
            for (var entry : admin.createTopics(topics).values().entrySet()) {
                try {
                    entry.getValue().get(config.requestTimeout().toMillis(), TimeUnit.MILLISECONDS);
                } catch (ExecutionException e) {
                    if (!(e.getCause() instanceof TopicExistsException)) {
                        throw new IllegalStateException("cannot create topic " + entry.getKey(), e.getCause());
                    }
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while creating topics", e);
        } catch (java.util.concurrent.TimeoutException e) {
            throw new IllegalStateException("Kafka at " + bootstrapServers + " did not answer within "
                    + config.requestTimeout(), e);
        }
    }

    private synchronized void stopEmbedded() {
        if (embedded != null) {
            embedded.close();
            embedded = null;
        }
    }
}
