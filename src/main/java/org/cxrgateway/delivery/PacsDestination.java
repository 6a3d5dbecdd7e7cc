package org.cxrgateway.delivery;

import org.cxrgateway.dicom.DicomTls;
import org.cxrgateway.dicom.DicomTransferException;
import org.cxrgateway.dicom.StoreScu;
import org.cxrgateway.report.ReportSet;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** C-STORE of the SR and SCs to one PACS. Each acknowledged SOP Instance is recorded and not sent again. */
public final class PacsDestination implements Destination {

    private final String name;
    private final String host;
    private final int port;
    private final String calledAe;
    private final String callingAe;
    private final Path spool;
    private final DicomTls.Settings tls;

    public PacsDestination(String name, String host, int port, String calledAe, String callingAe, Path spool) {
        this(name, host, port, calledAe, callingAe, spool, null);
    }

    /** @param tls null: plain DICOM */
    public PacsDestination(String name, String host, int port, String calledAe, String callingAe, Path spool,
                           DicomTls.Settings tls) {
        this.tls = tls;
        this.name = "pacs-" + name;
        this.host = host;
        this.port = port;
        this.calledAe = calledAe;
        this.callingAe = callingAe;
        this.spool = spool;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String toString() {
        return name + " -> " + calledAe + "@" + host + ":" + port + " as " + callingAe + (tls == null ? "" : " over TLS");
    }

    @Override
    public void deliver(ReportSet set, DeliveryLedger.View ledger) throws DeliveryException {
        Map<Path, String> files = new LinkedHashMap<>();
        try {
            Path dir = Files.createDirectories(spool).resolve(name + "-" + Thread.currentThread().getId() + "-" + System.nanoTime());
            Files.createDirectories(dir);
            try {
                for (ReportSet.DicomObject o : set.dicom()) {
                    if (!ledger.acked(o.sopInstanceUid())) {
                        Path f = dir.resolve(o.sopInstanceUid() + ".dcm");
                        Files.write(f, o.part10());
                        files.put(f, o.sopInstanceUid());
                    }
                }
                if (files.isEmpty()) {
                    return;
                }
                Map<Path, Boolean> result = StoreScu.store(host, port, calledAe, callingAe, new ArrayList<>(files.keySet()), tls);
                List<String> failed = new ArrayList<>();
                for (Map.Entry<Path, String> e : files.entrySet()) {
                    if (Boolean.TRUE.equals(result.get(e.getKey()))) {
                        ledger.ack(e.getValue());
                    } else {
                        failed.add(e.getValue());
                    }
                }
                if (!failed.isEmpty()) {
                    throw new DeliveryException(calledAe + " refused " + failed.size() + " of " + files.size() + " objects", true, null);
                }
            } finally {
                for (Path f : files.keySet()) {
                    Files.deleteIfExists(f);
                }
                Files.deleteIfExists(dir);
            }
        } catch (DicomTransferException e) {
            throw new DeliveryException(e.getMessage(), true, e);
        } catch (IOException e) {
            throw new DeliveryException("cannot spool objects for " + name + ": " + e.getMessage(), true, e);
        }
    }
}
