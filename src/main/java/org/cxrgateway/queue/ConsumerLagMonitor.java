package org.cxrgateway.queue;

import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.scheduler.Scheduled;
import jakarta.enterprise.context.ApplicationScoped;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.cxrgateway.GatewayConfig;
import org.jboss.logging.Logger;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;

/**
 * Publishes {@code cxr_kafka_consumer_lag{group,topic}}: messages not yet committed by each consumer
 * group of ours. Worker lag is what an autoscaler (KEDA) scales on and what an operator pages on.
 */
@ApplicationScoped
public class ConsumerLagMonitor {

    private static final Logger LOG = Logger.getLogger(ConsumerLagMonitor.class);
    private static final long TIMEOUT_MS = 5000;

    private final KafkaCluster cluster;
    private final GatewayConfig gateway;
    private final MeterRegistry metrics;
    private final Map<String, AtomicLong> lags = new ConcurrentHashMap<>();

    ConsumerLagMonitor(KafkaCluster cluster, MeterRegistry metrics, GatewayConfig gateway) {
        this.cluster = cluster;
        this.gateway = gateway;
        this.metrics = metrics;
    }

    @Scheduled(every = "${cxr.kafka.lag-interval:15s}", delayed = "10s",
            concurrentExecution = Scheduled.ConcurrentExecution.SKIP)
    void refresh() {
        // The offline score command runs no role: asking for lag would start the embedded broker.
        if (!gateway.runsAnyRole()) {
            return;
        }
        try {
            for (ConsumerGroupListing group : cluster.admin().listConsumerGroups().all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS)) {
                if (group.groupId().startsWith("cxr-")) {
                    refresh(group.groupId());
                }
            }
        } catch (Exception e) {
            LOG.debugf("consumer lag not refreshed: %s", e.toString());
        }
    }

    /** Lag of one group, per topic; also recorded as a gauge. */
    public Map<String, Long> refresh(String groupId) throws Exception {
        Map<TopicPartition, OffsetAndMetadata> committed = cluster.admin().listConsumerGroupOffsets(groupId)
                .partitionsToOffsetAndMetadata().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        Map<TopicPartition, OffsetSpec> latest = committed.keySet().stream()
                .collect(Collectors.toMap(tp -> tp, tp -> OffsetSpec.latest()));
        var ends = cluster.admin().listOffsets(latest).all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
        Map<String, Long> perTopic = new HashMap<>();
        committed.forEach((tp, offset) -> {
            long end = ends.get(tp).offset();
            long lag = Math.max(0, end - (offset == null ? 0 : offset.offset()));
            perTopic.merge(tp.topic(), lag, Long::sum);
        });
        perTopic.forEach((topic, lag) -> lags.computeIfAbsent(groupId + "\u0000" + topic, key -> {
            AtomicLong value = new AtomicLong();
            Gauge.builder("cxr_kafka_consumer_lag", value, AtomicLong::get)
                    .description("Messages not yet committed by the consumer group")
                    .tag("group", groupId).tag("topic", topic).register(metrics);
            return value;
        }).set(lag));
        return perTopic;
    }
}
