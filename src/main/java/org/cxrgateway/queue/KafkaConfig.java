package org.cxrgateway.queue;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

import java.time.Duration;
import java.util.Map;
import java.util.Optional;

/** Kafka settings. With no bootstrap servers the gateway runs its own broker in-process. */
@ConfigMapping(prefix = "cxr.kafka")
public interface KafkaConfig {

    /** An existing cluster. When absent, an embedded KRaft broker is started on loopback. */
    Optional<String> bootstrapServers();

    Embedded embedded();

    Topics topics();

    /** Partitions for topics the gateway creates; the unit of worker parallelism. */
    @WithDefault("6")
    int partitions();

    /** Replication factor for topics the gateway creates (1 on the embedded broker). */
    @WithDefault("1")
    short replicationFactor();

    /**
     * Largest message, bytes (producer max.request.size, consumer fetch sizes, embedded broker message.max.bytes).
     * A study travels one image per message (message StudyParts), so 1 MiB holds any study. Default 1048576.
     */
    @WithDefault("1048576")
    int maxMessageBytes();

    /**
     * Records one consumer poll may return. Kept small so that a worker never prefetches more
     * work than it can finish before its session times out, and memory stays bounded.
     */
    @WithDefault("16")
    int maxPollRecords();

    /** How long a client may wait for the cluster before an operation fails. */
    @WithDefault("30s")
    Duration requestTimeout();

    /**
     * Passed unchanged to every producer, consumer and admin client: TLS and SASL settings such as
     * {@code security.protocol}, {@code ssl.truststore.location}, {@code sasl.jaas.config}.
     */
    Map<String, String> client();

    interface Embedded {
        /** Client port of the embedded broker; 0 picks a free port. */
        @WithDefault("9092")
        int port();

        /** Controller (KRaft quorum) port of the embedded broker; 0 picks a free port. */
        @WithDefault("9093")
        int controllerPort();
    }

    interface Topics {
        /** Study jobs: key StudyInstanceUID, value StudyJob. */
        @WithDefault("cxr.study.jobs")
        String jobs();

        /** Inference results: key StudyInstanceUID, value StudyResult. */
        @WithDefault("cxr.study.results")
        String results();

        /** Poison messages and failed deliveries, with the reason in headers. */
        @WithDefault("cxr.dead-letters")
        String deadLetters();
    }
}
