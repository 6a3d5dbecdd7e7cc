package org.cxrgateway.health;

import jakarta.enterprise.context.ApplicationScoped;
import jakarta.inject.Inject;
import java.io.IOException;
import org.cxrgateway.dicom.DicomListener;
import org.cxrgateway.ingest.IngestService;
import org.cxrgateway.ingest.Spool;
import org.cxrgateway.ingest.StudyAssembler;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.HealthCheckResponseBuilder;
import org.eclipse.microprofile.health.Readiness;

/**
 * Ready when the DICOM listener is bound and the spool is writable and above its free-space watermark.
 * Quarantined studies are reported as data only: they wait for an operator, and new studies are still
 * received and published, so they do not make the process unready.
 */
@Readiness
@ApplicationScoped
public class IngestReadiness implements HealthCheck {

    @Inject
    IngestService ingest;

    @Inject
    DicomListener listener;

    @Override
    public HealthCheckResponse call() {
        HealthCheckResponseBuilder b = HealthCheckResponse.named("ingest");
        if (!ingest.isActive()) {
            return b.up().withData("role", "listener not active in this process").build();
        }
        Spool spool = ingest.spool();
        boolean bound = listener.isBound();
        boolean spoolOk = spool != null && spool.healthy();
        b.withData("listenerBound", bound).withData("port", listener.port()).withData("spoolWritableAboveWatermark", spoolOk);
        StudyAssembler assembler = ingest.assembler();
        if (assembler != null) {
            b.withData("studiesQuarantined", assembler.quarantined().size());
        }
        if (spool != null) {
            try {
                b.withData("spoolFreeBytes", spool.freeBytes()).withData("spoolMinFreeBytes", spool.minFreeBytes());
            } catch (IOException e) {
                b.withData("spoolError", e.getMessage());
            }
        }
        return b.status(bound && spoolOk).build();
    }
}
