package org.cxrgateway.dicom;

import com.pixelmed.dicom.Attribute;
import com.pixelmed.dicom.AttributeList;
import com.pixelmed.dicom.DicomException;
import com.pixelmed.dicom.DicomInputStream;
import com.pixelmed.dicom.DicomOutputStream;
import com.pixelmed.dicom.DicomStreamCopier;
import com.pixelmed.dicom.SetOfDicomFiles;
import com.pixelmed.dicom.TagFromName;
import com.pixelmed.network.AReleaseException;
import com.pixelmed.network.Association;
import com.pixelmed.network.AssociationFactory;
import com.pixelmed.network.CStoreRequestCommandMessage;
import com.pixelmed.network.CompositeResponseHandler;
import com.pixelmed.network.DicomNetworkException;
import com.pixelmed.network.PresentationContext;
import com.pixelmed.network.PresentationContextListFactory;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;

/**
 * C-STORE SCU: sends Part 10 files to one peer in one association and reports each instance's DIMSE status.
 *
 * <p>Why not PixelMed's {@code StorageSOPClassSCU}: it reduces the C-STORE response to success or not, so
 * a peer out of disk (A700, worth retrying) and a peer refusing the object itself (A900, Cxxx, never worth
 * retrying) look the same. We keep PixelMed's command encoding, P-DATA fragmentation and transfer syntax
 * conversion, and read the response status ourselves. The association is always negotiated on a socket we
 * open ({@link ScuAssociation}), plain or TLS, so that both have the same connect and read timeouts.
 */
public final class StoreScu {

    /** A PACS that does not answer is given up on (an association failure: retried later). */
    private static final int CONNECT_TIMEOUT_MILLIS = 30_000;
    private static final int READ_TIMEOUT_MILLIS = 120_000;

    private StoreScu() {
    }

    /** {@link #store(String, int, String, String, List, DicomTls.Settings)} over plain DICOM. */
    public static Map<Path, DimseStatus> store(String host, int port, String calledAe, String callingAe, List<Path> files)
            throws DicomTransferException {
        return store(host, port, calledAe, callingAe, files, null);
    }

    /**
     * Sends the files and gives, per file in the order given, the status the peer answered. A file whose SOP
     * class the peer accepted no presentation context for gets {@link DimseStatus#SOP_CLASS_NOT_SUPPORTED}
     * without being sent. A failure of the association itself (refused or unreachable peer, A-ASSOCIATE-RJ,
     * A-ABORT, timeout, TLS handshake failure such as an untrusted or misnamed PACS certificate) is thrown:
     * it says nothing about the instances.
     *
     * @param tls null: plain DICOM; else DICOM TLS with our own SSLContext ({@link DicomTls}), because
     *            PixelMed's own TLS path uses the JVM-wide default socket factory and suites without forward secrecy
     */
    public static Map<Path, DimseStatus> store(String host, int port, String calledAe, String callingAe, List<Path> files,
                                               DicomTls.Settings tls) throws DicomTransferException {
        String peer = calledAe + "@" + host + ":" + port;
        SetOfDicomFiles set = new SetOfDicomFiles();
        for (Path p : files) {
            set.add(p.toAbsolutePath().toString());
        }
        Socket socket;
        try {
            socket = connect(host, port, tls);
        } catch (IOException e) {
            throw new DicomTransferException((tls == null ? "connection to " : "TLS connection to ") + peer + " failed: "
                    + e.getMessage(), e);
        }
        Map<Path, DimseStatus> outcome = new LinkedHashMap<>();
        try (socket) {
            @SuppressWarnings("unchecked")
            LinkedList<PresentationContext> contexts = PresentationContextListFactory.createNewPresentationContextList(set, 0);
            ScuAssociation association = new ScuAssociation(socket, host, port, calledAe, callingAe, contexts,
                    AssociationFactory.getDefaultMaximumLengthReceived());
            try {
                for (Path p : files) {
                    outcome.put(p, sendOne(association, p));
                }
            } catch (IOException | DicomException | DicomNetworkException | AReleaseException e) {
                try {
                    association.abort();
                } catch (DicomNetworkException ignored) {
                    // the transport is gone already
                }
                throw new DicomTransferException("association with " + peer + " failed after " + outcome.size() + " of "
                        + files.size() + " instances: " + e.getMessage(), e);
            }
            association.release();
            return outcome;
        } catch (DicomTransferException e) {
            throw e;
        } catch (ScuAssociation.Rejected e) {
            // a transient rejection (e.g. the peer's association limit) is worth retrying, a permanent one is not
            throw new DicomTransferException(peer + " rejected the association: " + e.getMessage(), e, e.permanent(),
                    e.status());
        } catch (IOException | DicomNetworkException | RuntimeException e) {
            throw new DicomTransferException("C-STORE to " + peer + (tls == null ? "" : " over TLS") + " failed: " + e, e);
        }
    }

    private static Socket connect(String host, int port, DicomTls.Settings tls) throws IOException {
        if (tls != null) {
            return DicomTls.connect(tls, host, port, CONNECT_TIMEOUT_MILLIS, READ_TIMEOUT_MILLIS, true);
        }
        Socket s = new Socket();
        try {
            // DIMSE is request/response: Nagle would hold back the last fragment of each data set
            s.setTcpNoDelay(true);
            s.connect(new InetSocketAddress(host, port), CONNECT_TIMEOUT_MILLIS);
            s.setSoTimeout(READ_TIMEOUT_MILLIS);
            return s;
        } catch (IOException e) {
            s.close();
            throw e;
        }
    }

    /** One C-STORE (PS3.7 9.1.1): the command, the data set in the accepted transfer syntax, the response. */
    private static DimseStatus sendOne(Association association, Path file)
            throws IOException, DicomException, DicomNetworkException, AReleaseException {
        try (InputStream raw = new BufferedInputStream(Files.newInputStream(file));
             DicomInputStream in = new DicomInputStream(raw)) {
            AttributeList meta = new AttributeList();
            meta.readOnlyMetaInformationHeader(in);
            String sopClass = Attribute.getSingleStringValueOrEmptyString(meta, TagFromName.MediaStorageSOPClassUID);
            String sopInstance = Attribute.getSingleStringValueOrEmptyString(meta, TagFromName.MediaStorageSOPInstanceUID);
            byte context;
            try {
                context = association.getSuitablePresentationContextID(sopClass);
            } catch (DicomNetworkException e) {
                return new DimseStatus(DimseStatus.SOP_CLASS_NOT_SUPPORTED,
                        "no presentation context accepted for SOP class " + sopClass);
            }
            String inputSyntax = in.getTransferSyntaxToReadDataSet().getUID();
            String outputSyntax = association.getTransferSyntaxForPresentationContextID(context);
            StoreResponse response = new StoreResponse();
            association.setReceivedDataHandler(response);
            association.send(context, new CStoreRequestCommandMessage(sopClass, sopInstance).getBytes(), null);
            // closing the stream sends the last fragment, so it is closed exactly once: by us, or by the copier
            OutputStream out = association.getAssociationOutputStream(context);
            if (inputSyntax.equals(outputSyntax)) {
                in.transferTo(out);
                out.close();
            } else {
                new DicomStreamCopier(in, new DicomOutputStream(out, null, outputSyntax));
            }
            association.waitForCommandPDataPDUs();
            if (response.status == null) {
                throw new DicomNetworkException("no C-STORE response for " + sopInstance);
            }
            return response.status;
        }
    }

    /** Keeps the C-STORE-RSP's Status and Error Comment, which PixelMed's own handler reduces to a boolean. */
    private static final class StoreResponse extends CompositeResponseHandler {
        private DimseStatus status;

        @Override
        protected void evaluateStatusAndSetSuccess(AttributeList list) {
            status = new DimseStatus(Attribute.getSingleIntegerValueOrDefault(list, TagFromName.Status, 0xFFFF),
                    Attribute.getSingleStringValueOrNull(list, TagFromName.ErrorComment));
            success = status.acknowledged();
        }
    }
}
