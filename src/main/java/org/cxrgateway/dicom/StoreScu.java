package org.cxrgateway.dicom;

import com.pixelmed.dicom.SetOfDicomFiles;
import com.pixelmed.network.MultipleInstanceTransferStatusHandlerWithFileName;
import com.pixelmed.network.AssociationFactory;
import com.pixelmed.network.DicomNetworkException;
import com.pixelmed.network.PresentationContext;
import com.pixelmed.network.PresentationContextListFactory;
import com.pixelmed.network.StorageSOPClassSCU;

import java.io.IOException;
import java.util.LinkedList;
import javax.net.ssl.SSLSocket;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** C-STORE SCU: sends Part 10 files to one peer in one association. */
public final class StoreScu {

    /** TLS path only (PixelMed's own path has its own): a PACS that does not answer is given up on. */
    private static final int CONNECT_TIMEOUT_MILLIS = 30_000;
    private static final int READ_TIMEOUT_MILLIS = 120_000;

    private StoreScu() {
    }

    /**
     * Sends the files and reports, per file, whether the peer acknowledged it with a success or warning
     * status. A failure to associate is thrown; a per-instance refusal is a {@code false} in the result.
     */
    public static Map<Path, Boolean> store(String host, int port, String calledAe, String callingAe, List<Path> files)
            throws DicomTransferException {
        return store(host, port, calledAe, callingAe, files, null);
    }

    /**
     * As {@link #store(String, int, String, String, List)}, over DICOM TLS when {@code tls} is not null: the
     * TLS socket comes from our own SSLContext ({@link DicomTls}) and the association is negotiated on it
     * by {@link ScuAssociation}, because PixelMed's own TLS path uses the JVM-wide default socket factory
     * and suites without forward secrecy. A TLS handshake failure (untrusted or misnamed PACS
     * certificate, no common protocol) is an association failure.
     */
    public static Map<Path, Boolean> store(String host, int port, String calledAe, String callingAe, List<Path> files,
                                           DicomTls.Settings tls) throws DicomTransferException {
        Map<Path, Boolean> outcome = new LinkedHashMap<>();
        Map<String, Path> byName = new LinkedHashMap<>();
        SetOfDicomFiles set = new SetOfDicomFiles();
        for (Path p : files) {
            String name = p.toAbsolutePath().toString();
            byName.put(name, p);
            outcome.put(p, false);
            set.add(name);
        }
        MultipleInstanceTransferStatusHandlerWithFileName handler = new MultipleInstanceTransferStatusHandlerWithFileName() {
            @Override
            public void updateStatus(int remaining, int completed, int failed, int warning, String sopInstanceUid,
                                     String fileName, boolean success) {
                Path p = byName.get(fileName);
                if (p != null) {
                    outcome.put(p, success);
                }
            }
        };
        if (tls != null) {
            storeOverTls(host, port, calledAe, callingAe, set, handler, tls);
            return outcome;
        }
        try {
            StorageSOPClassSCU scu = new StorageSOPClassSCU(host, port, calledAe, callingAe, set, 0, handler);
            if (scu.encounteredTrappedExceptions()) {
                throw new DicomTransferException("association with " + calledAe + "@" + host + ":" + port
                        + " failed during transfer", null);
            }
        } catch (DicomTransferException e) {
            throw e;
        } catch (Exception e) {
            throw new DicomTransferException("C-STORE to " + calledAe + "@" + host + ":" + port + " failed: " + e, e);
        }
        return outcome;
    }

    private static void storeOverTls(String host, int port, String calledAe, String callingAe, SetOfDicomFiles set,
                                     MultipleInstanceTransferStatusHandlerWithFileName handler, DicomTls.Settings tls)
            throws DicomTransferException {
        String peer = calledAe + "@" + host + ":" + port;
        SSLSocket socket;
        try {
            socket = DicomTls.connect(tls, host, port, CONNECT_TIMEOUT_MILLIS, READ_TIMEOUT_MILLIS, true);
        } catch (IOException e) {
            throw new DicomTransferException("TLS connection to " + peer + " failed: " + e.getMessage(), e);
        }
        try (socket) {
            @SuppressWarnings("unchecked")
            LinkedList<PresentationContext> contexts = PresentationContextListFactory.createNewPresentationContextList(set, 0);
            ScuAssociation association = new ScuAssociation(socket, host, port, calledAe, callingAe, contexts,
                    AssociationFactory.getDefaultMaximumLengthReceived());
            StorageSOPClassSCU scu = new StorageSOPClassSCU(association, set, handler);
            if (scu.encounteredTrappedExceptions()) {
                try {
                    association.abort();
                } catch (DicomNetworkException ignored) {
                    // the transport is gone already
                }
                throw new DicomTransferException("association with " + peer + " failed during transfer", null);
            }
            association.release();
        } catch (DicomTransferException e) {
            throw e;
        } catch (Exception e) {
            throw new DicomTransferException("C-STORE over TLS to " + peer + " failed: " + e, e);
        }
    }
}
