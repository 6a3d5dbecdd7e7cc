package org.cxrgateway.ingest;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.function.Supplier;
import org.cxrgateway.dicom.AssociationInfo;
import org.cxrgateway.dicom.InstanceHeader;
import org.cxrgateway.dicom.ScpObserver;
import org.cxrgateway.dicom.StoreOutcome;

/**
 * Ingest metrics (Prometheus names in brackets):
 * associations by result (accepted, rejected, aborted by us for a protocol violation) and reason
 * [cxr_dicom_associations_total], rejected presentation contexts
 * [cxr_dicom_presentation_contexts_rejected_total], instances stored [cxr_ingest_instances_received_total],
 * duplicates [cxr_ingest_instances_duplicate_total], rejected by reason [cxr_ingest_instances_rejected_total],
 * ineligible by reason [cxr_ingest_instances_ineligible_total], bytes [cxr_ingest_received_bytes_total],
 * spool depth [cxr_ingest_spool_instances], studies waiting [cxr_ingest_studies_pending], studies quarantined
 * [cxr_ingest_studies_quarantined], images decoded to working images [cxr_ingest_images_decoded_total],
 * studies published [cxr_ingest_studies_published_total], studies without an eligible image
 * [cxr_ingest_studies_without_eligible_total], publish latency [cxr_ingest_publish_seconds] and
 * time from the last instance to the acknowledged job [cxr_ingest_study_ready_to_published_seconds].
 */
public final class IngestMetrics implements ScpObserver {

    private final MeterRegistry registry;
    private final Counter bytes;
    private final Counter stored;
    private final Counter duplicates;
    private final Timer publish;
    private final Timer readyToPublished;

    public IngestMetrics(MeterRegistry registry) {
        this.registry = registry;
        this.bytes = Counter.builder("cxr.ingest.received.bytes").description("Bytes of stored instances")
                .register(registry);
        this.stored = Counter.builder("cxr.ingest.instances.received").description("Instances stored durably")
                .register(registry);
        this.duplicates = Counter.builder("cxr.ingest.instances.duplicate")
                .description("Instances whose SOP Instance UID was already spooled").register(registry);
        this.publish = Timer.builder("cxr.ingest.publish").description("Time for the job sink to acknowledge a job")
                .register(registry);
        this.readyToPublished = Timer.builder("cxr.ingest.study.ready.to.published")
                .description("From the last received instance of a study to its acknowledged job").register(registry);
    }

    public MeterRegistry registry() {
        return registry;
    }

    public void spoolDepth(Supplier<Number> depth) {
        Gauge.builder("cxr.ingest.spool.instances", depth).description("Instances in the spool").register(registry);
    }

    public void pendingStudies(Supplier<Number> pending) {
        Gauge.builder("cxr.ingest.studies.pending", pending).description("Studies waiting to be published")
                .register(registry);
    }

    public void quarantinedStudies(Supplier<Number> quarantined) {
        Gauge.builder("cxr.ingest.studies.quarantined", quarantined)
                .description("Studies whose job is not published until an operator retries them").register(registry);
    }

    @Override
    public void associationAccepted(AssociationInfo association) {
        registry.counter("cxr.dicom.associations", "result", "accepted", "reason", "none").increment();
    }

    @Override
    public void associationRejected(String reason) {
        registry.counter("cxr.dicom.associations", "result", "rejected", "reason", reason).increment();
    }

    @Override
    public void associationAborted(String reason) {
        registry.counter("cxr.dicom.associations", "result", "aborted", "reason", reason).increment();
    }

    @Override
    public void presentationContextRejected(String abstractSyntax, String reason) {
        registry.counter("cxr.dicom.presentation.contexts.rejected", "reason", reason).increment();
    }

    @Override
    public void instanceStored(InstanceHeader header, long size) {
        stored.increment();
        bytes.increment(size);
    }

    @Override
    public void duplicateInstance(InstanceHeader header) {
        duplicates.increment();
    }

    @Override
    public void instanceRejected(StoreOutcome outcome) {
        registry.counter("cxr.ingest.instances.rejected", "reason", outcome.label(),
                "status", String.format("%04X", outcome.status().code())).increment();
    }

    public void instanceIneligible(String reason) {
        registry.counter("cxr.ingest.instances.ineligible", "reason", reason).increment();
    }

    public void studyWithoutEligible() {
        registry.counter("cxr.ingest.studies.without.eligible").increment();
    }

    public void studyPublished(boolean update, Duration publishTime, Duration sinceLastInstance) {
        registry.counter("cxr.ingest.studies.published", "update", Boolean.toString(update)).increment();
        publish.record(publishTime);
        readyToPublished.record(sinceLastInstance);
    }

    public void publishFailed() {
        registry.counter("cxr.ingest.publish.failures").increment();
    }

    public void imageDecoded() {
        registry.counter("cxr.ingest.images.decoded").increment();
    }
}
