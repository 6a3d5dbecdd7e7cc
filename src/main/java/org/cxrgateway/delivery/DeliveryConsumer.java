package org.cxrgateway.delivery;

import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import jakarta.inject.Inject;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.cxrgateway.GatewayConfig;
import org.cxrgateway.queue.ConsumerLoop;
import org.cxrgateway.queue.DeadLetters;
import org.cxrgateway.queue.KafkaCluster;
import org.cxrgateway.queue.KafkaConfig;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.message.PoisonMessageException;
import org.cxrgateway.schema.v2.StudyResult;
import org.jboss.logging.Logger;

import java.time.Duration;

/**
 * The delivery role: reads results on the shared {@link ConsumerLoop} and hands each one over to
 * {@link DeliveryService#accept}, which makes it durable per destination (or, for one part of a multi-part
 * result, holds the part durably); the offset is committed right after, without waiting for any destination.
 * A poison message goes to the dead-letter topic (acknowledged by the broker before its offset is committed).
 * If either hand-off fails, the partition is rewound to that record and retried after a pause, so nothing
 * received is lost; a redelivery is harmless (same pending id, first part copy kept, ledger, deterministic UIDs).
 */
@ApplicationScoped
public class DeliveryConsumer {

    private static final Logger LOG = Logger.getLogger(DeliveryConsumer.class);
    private static final Duration HAND_OFF_RETRY = Duration.ofSeconds(1);
    /** Results handed over are done at once; this only bounds one poll's worth. */
    private static final int MAX_IN_FLIGHT = 64;

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

    private ConsumerLoop loop;
    private volatile String state = "not started";

    /** For readiness: "consuming" once the report builders are warm and results are read. */
    public String state() {
        return state;
    }

    void start(@Observes StartupEvent e) {
        if (!gateway.runs(GatewayConfig.Role.DELIVERY)) {
            return;
        }
        // before the first result is read, so that no study pays for the FHIR model scan, fonts or the JIT
        state = "warming up";
        service.warmUp();
        state = "resuming";
        service.resume();
        service.startHousekeeping(config.retention());
        loop = new ConsumerLoop(new ConsumerLoop.Settings("delivery-consumer", "delivery", kafka.topics().results(),
                cluster.consumerProperties(config.consumerGroup()), MAX_IN_FLIGHT, HAND_OFF_RETRY,
                kafka.requestTimeout().multipliedBy(2)), deadLetters, this::handOver);
        loop.start();
        state = "consuming";
        LOG.infof("delivery consumer started on %s, destinations %s", kafka.topics().results(), service.describe());
    }

    void stop(@Observes ShutdownEvent e) {
        if (loop != null) {
            loop.stop();
        }
    }

    /** DONE once the record is durably someone else's responsibility (pending or part store). */
    private ConsumerLoop.Disposition handOver(ConsumerRecord<String, byte[]> r, Runnable ack) throws ConsumerLoop.Poison {
        StudyResult result;
        try {
            result = MessageCodec.decodeResult(r.value());
        } catch (PoisonMessageException | RuntimeException bad) {
            throw new ConsumerLoop.Poison("unreadable result: " + bad.getMessage());
        }
        if (result.getPreview()) {
            // an early copy without the guided maps: a chance to send SRs sooner, never held (the full result follows)
            service.preview(result);
            return ConsumerLoop.Disposition.DONE;
        }
        try {
            service.accept(r.value(), result);
            return ConsumerLoop.Disposition.DONE;
        } catch (RuntimeException e) {
            LOG.errorf("result of study %s not handed over (%s), will retry", result.getStudy() == null ? "?"
                    : result.getStudy().getStudyInstanceUid(), e.toString());
            return ConsumerLoop.Disposition.RETRY;
        }
    }
}
