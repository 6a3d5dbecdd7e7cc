package org.cxrgateway.delivery;

import org.cxrgateway.report.ReportSet;
import org.cxrgateway.storage.DurableFiles;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Used when no PACS and no FHIR server is configured: the objects land in outbox/&lt;study&gt;/, each written with
 * {@link DurableFiles#write}, so that delivered means on disk (the pending item is removed after this returns).
 */
public final class OutboxDestination implements Destination {

    private final Path dir;

    public OutboxDestination(Path dir) {
        this.dir = dir;
    }

    @Override
    public String name() {
        return "outbox";
    }

    public Path dir() {
        return dir;
    }

    @Override
    public String toString() {
        return "outbox -> " + dir.toAbsolutePath();
    }

    @Override
    public void deliver(ReportSet set, DeliveryLedger.View ledger) throws DeliveryException {
        try {
            Path study = DurableFiles.createDirectories(dir.resolve(DeliveryLedger.safe(set.studyInstanceUid())));
            for (ReportSet.DicomObject o : set.dicom()) {
                DurableFiles.write(study.resolve(o.kind() + "-" + o.sopInstanceUid() + ".dcm"), o.part10());
            }
            DurableFiles.write(study.resolve("bundle.json"), set.fhirBundleJson().getBytes(java.nio.charset.StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new DeliveryException("cannot write outbox: " + e.getMessage(), true, e);
        }
    }
}
