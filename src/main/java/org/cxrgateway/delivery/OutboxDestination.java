package org.cxrgateway.delivery;

import org.cxrgateway.report.ReportSet;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/** Used when no PACS and no FHIR server is configured: the objects land in outbox/&lt;study&gt;/. */
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
            Path study = Files.createDirectories(dir.resolve(DeliveryLedger.safe(set.studyInstanceUid())));
            for (ReportSet.DicomObject o : set.dicom()) {
                write(study.resolve(o.kind() + "-" + o.sopInstanceUid() + ".dcm"), o.part10());
            }
            write(study.resolve("bundle.json"), set.fhirBundleJson().getBytes(java.nio.charset.StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new DeliveryException("cannot write outbox: " + e.getMessage(), true, e);
        }
    }

    private static void write(Path target, byte[] data) throws IOException {
        Path tmp = Files.createTempFile(target.getParent(), ".out", ".tmp");
        Files.write(tmp, data);
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
