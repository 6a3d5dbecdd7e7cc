package org.cxrgateway.delivery;

import org.cxrgateway.dicom.DicomTls;
import org.cxrgateway.dicom.DicomTransferException;
import org.cxrgateway.dicom.DimseStatus;
import org.cxrgateway.dicom.StoreScu;
import org.cxrgateway.report.ReportSet;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * C-STORE of the SR and SCs to one PACS. Each acknowledged SOP Instance (Success or Warning) is recorded and not
 * sent again. A transient refusal (A7xx out of resources) or a failed association is retried; a permanent refusal
 * (Cxxx, A9xx, any other failure status, or a rejected-permanent A-ASSOCIATE-RJ) is not, and its status goes with
 * the dead letter.
 */
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

    /** The SRs go on an association of their own ahead of the pictures they reference (issue 13, latency). */
    @Override
    public boolean srsFirst() {
        return true;
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
                Map<Path, DimseStatus> result = StoreScu.store(host, port, calledAe, callingAe, new ArrayList<>(files.keySet()), tls);
                Map<String, DimseStatus> refused = new LinkedHashMap<>();
                for (Map.Entry<Path, String> e : files.entrySet()) {
                    DimseStatus status = result.get(e.getKey());
                    if (status.acknowledged()) {
                        ledger.ack(e.getValue());
                    } else {
                        refused.put(e.getValue(), status);
                    }
                }
                if (!refused.isEmpty()) {
                    // a refusal of the instance itself cannot be settled by resending: the study is dead-lettered
                    // now, while a refusal for now (out of resources) is retried; the ledger keeps what was acknowledged
                    boolean permanent = refused.values().stream().anyMatch(s -> !s.isTransient());
                    List<String> shown = new ArrayList<>();
                    DimseStatus first = null;
                    for (Map.Entry<String, DimseStatus> r : refused.entrySet()) {
                        if (permanent == !r.getValue().isTransient()) {
                            shown.add(r.getKey() + " " + r.getValue());
                            first = first == null ? r.getValue() : first;
                        }
                    }
                    throw new DeliveryException(calledAe + " refused " + shown.size() + " of " + files.size() + " objects "
                            + (permanent ? "permanently" : "for now") + ": " + String.join(", ", shown), !permanent, null,
                            Duration.ZERO, first.toString());
                }
            } finally {
                for (Path f : files.keySet()) {
                    Files.deleteIfExists(f);
                }
                Files.deleteIfExists(dir);
            }
        } catch (DicomTransferException e) {
            throw new DeliveryException(e.getMessage(), !e.permanent(), e, Duration.ZERO, e.status());
        } catch (IOException e) {
            throw new DeliveryException("cannot spool objects for " + name + ": " + e.getMessage(), true, e);
        }
    }
}
