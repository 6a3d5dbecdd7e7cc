package org.cxrgateway.inference;

import org.cxrgateway.Audit;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.runtime.ShutdownEvent;
import io.quarkus.runtime.StartupEvent;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.event.Observes;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.cxrgateway.GatewayConfig;
import org.cxrgateway.queue.ConsumerLoop;
import org.cxrgateway.queue.DeadLetters;
import org.cxrgateway.queue.KafkaCluster;
import org.cxrgateway.message.MessageBudget;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.queue.JobPublisher;
import org.cxrgateway.message.PoisonMessageException;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;
import org.jboss.logging.Logger;
import org.jboss.logging.MDC;

import java.time.Duration;

/**
 * The worker: a consumer in group cxr.inference.group-id on the jobs topic, on the shared
 * {@link ConsumerLoop}. At-least-once: a job's offset is committed only after its StudyResult (or, for a
 * poison message, its dead letter) is acknowledged with acks=all, and only up to the lowest offset still in
 * flight, so a crash replays unfinished jobs (consumers dedupe on jobId). Poison messages never stall a
 * partition: they go to the dead-letter topic with the reason and count as done. A failed produce or a failed
 * engine stops the worker without committing, so the job is redelivered rather than lost.
 */
@ApplicationScoped
public class InferenceWorker {

    private static final Logger LOG = Logger.getLogger(InferenceWorker.class);
    /** Pause fetching when this many jobs are in flight: bounds memory and keeps rebalances quick. */
    static final int MAX_IN_FLIGHT = 64;

    private final KafkaCluster cluster;
    private final JobPublisher publisher;
    private final DeadLetters deadLetters;
    private final ModelRegistry registry;
    private final InferenceConfig config;
    private final GatewayConfig gateway;
    private final MeterRegistry metrics;
    private volatile ConsumerLoop loop;
    private Thread starter;

    InferenceWorker(KafkaCluster cluster, JobPublisher publisher, DeadLetters deadLetters, ModelRegistry registry,
                    InferenceConfig config, GatewayConfig gateway, MeterRegistry metrics) {
        this.cluster = cluster;
        this.publisher = publisher;
        this.deadLetters = deadLetters;
        this.registry = registry;
        this.config = config;
        this.gateway = gateway;
        this.metrics = metrics;
    }

    void onStart(@Observes StartupEvent event) {
        if (!gateway.runs(GatewayConfig.Role.WORKER)) {
            return;
        }
        // the models load in the background; the loop starts once they are ready
        starter = new Thread(this::startWhenReady, "cxr-inference-worker-start");
        starter.setDaemon(true);
        starter.start();
    }

    void onStop(@Observes ShutdownEvent event) {
        if (starter != null) {
            try {
                starter.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        ConsumerLoop l = loop;
        if (l != null) {
            l.stop();
        }
    }

    /** Jobs consumed and not yet committed. */
    public int inFlight() {
        ConsumerLoop l = loop;
        return l == null ? 0 : l.inFlight();
    }

    private void startWhenReady() {
        MicroBatcher batcher;
        try {
            batcher = registry.ready().join();
        } catch (RuntimeException e) {
            LOG.error("worker not started: the inference models did not load");
            return;
        }
        for (OrtModel m : registry.models()) {
            if (m.decisionMargin() > 0) {
                FunctionCounter.builder("cxr_inference_int8_refereed_images_total", m, OrtModel::refereedImages)
                        .description("images with an INT8 score within cxr.inference.int8-decision-margin (log-odds) of a threshold, scored again at FP32")
                        .tag("model", m.pkg().manifest().id())
                        .register(metrics);
            }
        }
        String topic = cluster.config().topics().jobs();
        ConsumerLoop l = new ConsumerLoop(new ConsumerLoop.Settings("cxr-inference-worker", "worker", topic,
                cluster.consumerProperties(config.groupId()), MAX_IN_FLIGHT, Duration.ofSeconds(1),
                cluster.config().requestTimeout().multipliedBy(2)), deadLetters, new Jobs(batcher));
        loop = l;
        l.start();
        LOG.infof("worker consuming %s as group %s (max batch %d, max wait %s)", topic, config.groupId(), config.maxBatch(), config.maxWait());
    }

    /** A job to the micro-batcher; done when its result is acknowledged. */
    private final class Jobs implements ConsumerLoop.Handler {
        private final MicroBatcher batcher;

        Jobs(MicroBatcher batcher) {
            this.batcher = batcher;
        }

        @Override
        public ConsumerLoop.Disposition handle(ConsumerRecord<String, byte[]> r, Runnable ack) throws ConsumerLoop.Poison {
            StudyJob job;
            long consumed = System.nanoTime();
            try {
                job = MessageCodec.decodeJob(r.value());
                batcher.submit(job, new MicroBatcher.Sink() {
                    /** When the preview went to the producer, 0 without one. */
                    private long previewNanos;

                    @Override
                    public void preview(StudyJob j, StudyResult preview) {
                        if (publishPreview(j, preview, batcher.guidedMapSide())) {
                            previewNanos = System.nanoTime();
                        }
                    }

                    @Override
                    public void done(StudyJob j, StudyResult result, MicroBatcher.Stages stages) {
                        publish(j, result, stages, ack, consumed, previewNanos);
                    }

                    @Override
                    public void failed(StudyJob j, Exception error) {
                        // the engine failed on a batch: not the message's fault, so no dead letter; stop and
                        // let the job be redelivered to a healthy worker
                        LOG.errorf("inference failed for job %s: %s", j.getJobId(), error.getMessage());
                        loop.fail(error);
                    }
                });
            } catch (PoisonMessageException | IllegalArgumentException e) {
                throw new ConsumerLoop.Poison(e.getMessage());
            }
            return ConsumerLoop.Disposition.PENDING;
        }

        @Override
        public void deadLettered(ConsumerRecord<String, byte[]> r, String reason) {
            Audit.record(Audit.Event.DEAD_LETTERED, r.key(), "stage=worker offset=" + r.offset());
            metrics.counter("cxr_inference_poison_total").increment();
        }
    }

    private static int guidedMaps(StudyResult result) {
        int n = 0;
        for (var image : result.getImages()) {
            for (var run : image.getRuns()) {
                for (var f : run.getFindings()) {
                    n += f.getGuided() != null ? 1 : 0;
                }
            }
        }
        return n;
    }

    /**
     * Publishes a result's preview (MicroBatcher.Sink.preview), so that delivery can send the SRs while the guided
     * maps are made. Best effort: the full result follows on the same partition and carries everything, so a
     * preview that does not fit or is not acknowledged costs only time. The offset waits for the full result alone.
     *
     * @return whether the preview went to the producer
     */
    private boolean publishPreview(StudyJob job, StudyResult preview, int guidedSide) {
        var encoded = MessageBudget.previewFits(preview, guidedSide, cluster.config().maxMessageBytes());
        if (encoded.isEmpty()) {
            metrics.counter("cxr_inference_previews_total", "outcome", "too_large").increment();
            return false;
        }
        publisher.publish(preview, encoded.get()).whenComplete((md, err) -> {
            if (err != null) {
                metrics.counter("cxr_inference_previews_total", "outcome", "failed").increment();
                LOG.warnf("preview of job %s part %d not acknowledged (its full result carries everything): %s",
                        job.getJobId(), job.getPartIndex(), err.getMessage());
            } else {
                metrics.counter("cxr_inference_previews_total", "outcome", "published").increment();
            }
        });
        return true;
    }

    private void publish(StudyJob job, StudyResult result, MicroBatcher.Stages stages, Runnable ack, long consumedNanos,
                         long previewNanos) {
        long scoredNanos = System.nanoTime();
        MDC.put("study", job.getStudy().getStudyInstanceUid());
        try {
            MessageBudget.Fitted fitted = MessageBudget.fit(result, cluster.config().maxMessageBytes());
            if (fitted.droppedGuided() > 0) {
                metrics.counter("cxr_inference_guided_dropped_total").increment(fitted.droppedGuided());
                LOG.warnf("job %s part %d: %d guided Grad-CAM map(s) left out to keep the result within %d bytes",
                        job.getJobId(), job.getPartIndex(), fitted.droppedGuided(), cluster.config().maxMessageBytes());
            }
            // the publisher keys the result by study and sets the cxr.job-id header, as it does for jobs
            publisher.publish(result, fitted.encoded()).whenComplete((md, err) -> {
                if (err != null) {
                    LOG.errorf("result for job %s not acknowledged: %s", job.getJobId(), err.getMessage());
                    loop.fail(err);
                } else {
                    // score_ms: from the job's consumption to its result (decode, batch wait, engine, Grad-CAM, guided
                    // maps), of which prepare_ms decoding and preprocessing, engine_ms the engine, post_ms Grad-CAM and
                    // guided maps, guided_ms the guided maps alone; preview_ms: from the consumption to the preview's
                    // hand-over to the producer (-1 without one); publish_ms: encoding and the broker's acknowledgement
                    long now = System.nanoTime();
                    Audit.record(Audit.Event.SCORED, job.getStudy().getStudyInstanceUid(), String.format(
                            "job=%s part=%d/%d images=%d prepare_ms=%.1f engine_ms=%.1f post_ms=%.1f guided_ms=%.1f batch=%d "
                                    + "guided=%d score_ms=%d preview_ms=%d publish_ms=%d",
                            job.getJobId(), job.getPartIndex() + 1, job.getPartCount(), result.getImages().size(),
                            stages.prepareMs(), result.getInferenceMs(), stages.postMs(), stages.guidedMs(),
                            result.getBatchSize(), guidedMaps(result), (scoredNanos - consumedNanos) / 1_000_000,
                            previewNanos == 0 ? -1 : (previewNanos - consumedNanos) / 1_000_000, (now - scoredNanos) / 1_000_000));
                    if (job.getPartIndex() == 0) {
                        metrics.counter("cxr_inference_studies_total").increment();
                    }
                    metrics.counter("cxr_inference_images_total").increment(result.getImages().size());
                    ack.run();
                }
            });
        } finally {
            MDC.remove("study");
        }
    }
}
