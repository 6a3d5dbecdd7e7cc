package org.cxrgateway.dicom;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import org.jboss.logging.Logger;

/**
 * The association policy, applied to one accepted connection on its own thread before any DIMSE: ARTIM
 * (PS3.8 9.1.5) over the TLS handshake and the A-ASSOCIATE-RQ, the request's length checked before it is
 * read, the called AE, the calling AE against the allow-list, and the cap on open associations. A refusal is
 * an A-ASSOCIATE-RJ or A-ABORT with named codes ({@link Pdu}), one count by reason and one log line; an
 * admitted association goes to the {@link DimseDispatcher}.
 *
 * <p>PixelMed's own acceptor checks only the called AE, so the request is read here and replayed to it.
 */
final class AssociationAcceptor {

    private static final Logger LOG = Logger.getLogger(AssociationAcceptor.class);

    /** An A-ASSOCIATE-RQ larger than this is refused unread: real ones are a few KiB (dcm4che uses the same bound). */
    static final int MAX_ASSOCIATE_RQ_LENGTH = 64 * 1024;

    private final StoreScp.Options options;
    private final ScpObserver observer;
    private final ScheduledExecutorService timer;
    private final AssociationRefusals refusals;
    private final DimseDispatcher dimse;
    private final Semaphore slots;
    private final Set<Socket> open = ConcurrentHashMap.newKeySet();

    AssociationAcceptor(StoreScp.Options options, ScpObserver observer, ScheduledExecutorService timer,
                        AssociationRefusals refusals, DimseDispatcher dimse) {
        this.options = options;
        this.observer = observer;
        this.timer = timer;
        this.refusals = refusals;
        this.dimse = dimse;
        this.slots = new Semaphore(Math.max(1, options.maxAssociations()));
    }

    /** Closes every connection being served (their threads then end on the failed read). */
    void closeAll() {
        open.forEach(AssociationRefusals::closeQuietly);
    }

    void serve(Socket socket) {
        open.add(socket);
        AtomicBoolean requested = new AtomicBoolean();
        AtomicBoolean artimExpired = new AtomicBoolean();
        // ARTIM (PS3.8 9.1.5): the whole A-ASSOCIATE-RQ, TLS handshake included, within the timeout, however
        // slowly the peer drips it (a read timeout alone would restart with every byte)
        ScheduledFuture<?> artim = timer.schedule(() -> {
            if (!requested.get() && artimExpired.compareAndSet(false, true)) {
                AssociationRefusals.closeQuietly(socket);
            }
        }, options.artimTimeoutMillis(), TimeUnit.MILLISECONDS);
        try (socket) {
            socket.setTcpNoDelay(options.tcpNoDelay());
            socket.setSoTimeout(Math.min(options.socketTimeoutMillis(), options.artimTimeoutMillis()));
            if (socket instanceof SSLSocket ssl && !handshake(ssl, artimExpired)) {
                return;
            }
            byte[] request;
            try {
                request = readAssociateRequest(socket);
            } catch (IOException e) {
                if (artimExpiry(e, artimExpired, socket, "A-ASSOCIATE-RQ")) {
                    return;
                }
                throw e;
            }
            if (request == null || !requested.compareAndSet(false, true)) {
                return;
            }
            artim.cancel(false);
            socket.setSoTimeout(options.socketTimeoutMillis());
            String called = aeTitle(request, Pdu.CALLED_AE_OFFSET);
            String calling = aeTitle(request, Pdu.CALLING_AE_OFFSET);
            if (!options.aeTitle().equals(called)) {
                AssociationRefusals.reject(socket, Pdu.RejectResult.PERMANENT, Pdu.RejectSource.SERVICE_USER,
                        Pdu.RejectReason.CALLED_AE_TITLE_NOT_RECOGNIZED);
                observer.associationRejected("CALLED_AE_NOT_RECOGNIZED");
                LOG.infof("rejected association from %s: called AE not recognized", socket.getInetAddress());
                return;
            }
            if (!callingAllowed(calling, socket.getInetAddress())) {
                AssociationRefusals.reject(socket, Pdu.RejectResult.PERMANENT, Pdu.RejectSource.SERVICE_USER,
                        Pdu.RejectReason.CALLING_AE_TITLE_NOT_RECOGNIZED);
                observer.associationRejected("CALLING_AE_NOT_RECOGNIZED");
                LOG.infof("rejected association from %s: calling AE %s not recognized", socket.getInetAddress(), calling);
                return;
            }
            if (!slots.tryAcquire()) {
                AssociationRefusals.reject(socket, Pdu.RejectResult.TRANSIENT, Pdu.RejectSource.SERVICE_PROVIDER_PRESENTATION,
                        Pdu.RejectReason.LOCAL_LIMIT_EXCEEDED);
                observer.associationRejected("LOCAL_LIMIT_EXCEEDED");
                LOG.warnf("rejected association from %s: %d associations open", calling, options.maxAssociations());
                return;
            }
            try {
                dimse.run(socket, request);
            } finally {
                slots.release();
            }
        } catch (IOException | RuntimeException e) {
            LOG.debugf("association ended with %s", e.toString());
        } finally {
            artim.cancel(false);
            open.remove(socket);
        }
    }

    /**
     * Whether this read failure is the ARTIM timer's (it fired, or the read timed out before the request was
     * whole): if so it is counted and logged once, and the caller closes the connection.
     */
    private boolean artimExpiry(IOException e, AtomicBoolean artimExpired, Socket socket, String awaited) {
        if (!artimExpired.get() && !(e instanceof SocketTimeoutException)) {
            return false;
        }
        artimExpired.set(true);
        observer.associationRejected("ARTIM_EXPIRED");
        LOG.infof("closed connection from %s: no %s within %d ms", socket.getInetAddress().getHostAddress(), awaited,
                options.artimTimeoutMillis());
        return true;
    }

    /** Runs the TLS handshake (bounded by the socket timeout); a failed one is a rejected association. */
    private boolean handshake(SSLSocket ssl, AtomicBoolean artimExpired) {
        try {
            ssl.startHandshake();
            SSLSession session = ssl.getSession();
            String peer;
            try {
                peer = session.getPeerPrincipal().getName();
            } catch (SSLPeerUnverifiedException e) {
                peer = "no client certificate";
            }
            LOG.debugf("TLS from %s: %s %s, %s", ssl.getInetAddress(), session.getProtocol(), session.getCipherSuite(), peer);
            return true;
        } catch (IOException e) {
            if (artimExpiry(e, artimExpired, ssl, "TLS handshake and A-ASSOCIATE-RQ")) {
                return false;
            }
            observer.associationRejected("TLS_HANDSHAKE_FAILED");
            // a plain DICOM peer on the TLS port, an untrusted or missing client certificate, no common protocol
            LOG.infof("TLS handshake with %s failed: %s", ssl.getInetAddress(), e.getMessage());
            return false;
        }
    }

    private boolean callingAllowed(String calling, InetAddress remote) {
        List<String> allowed = options.allowedCallingAes();
        if (allowed == null || allowed.isEmpty()) {
            return true;
        }
        for (String entry : allowed) {
            String e = entry.trim();
            int at = e.indexOf('@');
            String ae = at < 0 ? e : e.substring(0, at);
            if (!ae.equals(calling)) {
                continue;
            }
            if (at < 0) {
                return true;
            }
            String host = e.substring(at + 1);
            try {
                for (InetAddress a : InetAddress.getAllByName(host)) {
                    if (a.equals(remote)) {
                        return true;
                    }
                }
            } catch (IOException ex) {
                LOG.warnf("allowed calling AE %s: cannot resolve %s", ae, host);
            }
        }
        return false;
    }

    /**
     * Reads the A-ASSOCIATE-RQ PDU whole (header included), its declared length checked before anything
     * is allocated for it; null when the connection is refused (already counted, logged and answered).
     */
    private byte[] readAssociateRequest(Socket socket) throws IOException {
        InputStream in = socket.getInputStream();
        byte[] header = in.readNBytes(Pdu.HEADER_LENGTH);
        if (header.length < Pdu.HEADER_LENGTH || Pdu.type(header, 0) != Pdu.A_ASSOCIATE_RQ) {
            // not (yet) a DICOM peer, e.g. HTTP on the DICOM port: drop it without an answer
            observer.associationRejected("MALFORMED");
            return null;
        }
        long length = Pdu.length(header, 0);
        if (length < Pdu.ASSOCIATE_FIXED_FIELDS || length > MAX_ASSOCIATE_RQ_LENGTH) {
            observer.associationRejected("MALFORMED");
            refusals.abort(socket, length > MAX_ASSOCIATE_RQ_LENGTH ? "PDU_LENGTH_EXCEEDED" : "PDU_LENGTH_INVALID",
                    Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE, "A-ASSOCIATE-RQ of " + length + " bytes (at most "
                            + MAX_ASSOCIATE_RQ_LENGTH + ")");
            return null;
        }
        byte[] pdu = Arrays.copyOf(header, Pdu.HEADER_LENGTH + (int) length);
        int got = in.readNBytes(pdu, Pdu.HEADER_LENGTH, (int) length);
        if (got < length) {
            observer.associationRejected("MALFORMED");
            LOG.infof("connection from %s: truncated A-ASSOCIATE-RQ (%d of %d bytes)", socket.getInetAddress().getHostAddress(),
                    got, length);
            return null;
        }
        return pdu;
    }

    private static String aeTitle(byte[] pdu, int offset) {
        return new String(pdu, offset, 16, StandardCharsets.US_ASCII).trim();
    }
}
