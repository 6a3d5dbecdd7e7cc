package org.cxrgateway.dicom;

import com.pixelmed.dicom.AttributeList;
import com.pixelmed.dicom.DicomException;
import com.pixelmed.dicom.DicomOutputStream;
import com.pixelmed.dicom.FileMetaInformation;
import com.pixelmed.dicom.TagFromName;
import com.pixelmed.network.AReleaseException;
import com.pixelmed.network.Association;
import com.pixelmed.network.AssociationFactory;
import com.pixelmed.network.CEchoRequestCommandMessage;
import com.pixelmed.network.CEchoResponseCommandMessage;
import com.pixelmed.network.CStoreRequestCommandMessage;
import com.pixelmed.network.CStoreResponseCommandMessage;
import com.pixelmed.network.CompositeResponseHandler;
import com.pixelmed.network.DicomNetworkException;
import com.pixelmed.network.PDataPDU;
import com.pixelmed.network.PresentationContext;
import com.pixelmed.network.PresentationContextSelectionPolicy;
import com.pixelmed.network.PresentationDataValue;
import java.io.ByteArrayOutputStream;
import java.io.Closeable;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import javax.net.ssl.SSLPeerUnverifiedException;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import org.jboss.logging.Logger;

/**
 * C-ECHO and C-STORE SCP on PixelMed's association layer.
 *
 * <p>Why not {@code StorageSOPClassSCPDispatcher}: PixelMed always answers C-STORE with Success
 * (0000), and it does so after writing the file without fsync; an exception in its
 * ReceivedObjectHandler drops the association without any response. It also cannot reject by
 * calling AE, cap associations or set TCP_NODELAY. So we keep PixelMed for PDU parsing,
 * association negotiation (with our {@link PresentationContextSelectionPolicy}) and DIMSE command
 * encoding, and own the accept loop and the C-STORE data path: the data set is streamed to a spool
 * temporary file, parsed, made durable by the {@link InstanceStore}, and only then is Success sent.
 * Any failure gets Out of Resources (A700) or Cannot Understand / processing failure (Cxxx).
 *
 * <p>With {@link Options#tls()} set, the port speaks DICOM TLS only (PS3.15 Annex B; see {@link DicomTls}).
 * PS3.15 registers port 2762 for DICOM over TLS (104 / 11112 for plain DICOM); we bind the configured
 * port either way, because sites assign their own and a port is either TLS or plain, never both.
 */
public final class StoreScp implements Closeable {

    private static final Logger LOG = Logger.getLogger(StoreScp.class);

    /** C-STORE status codes we answer with (PS3.4 B.2.3, PS3.7 C). */
    public static final int SUCCESS = 0x0000;
    public static final int OUT_OF_RESOURCES = 0xA700;
    public static final int SOP_CLASS_NOT_SUPPORTED = 0x0122;
    public static final int CANNOT_UNDERSTAND = 0xC000;
    public static final int PROCESSING_FAILURE = 0xC001;
    public static final int UID_MISMATCH = 0xC002;

    /** An A-ASSOCIATE-RQ larger than this is refused unread: real ones are a few KiB (dcm4che uses the same bound). */
    static final int MAX_ASSOCIATE_RQ_LENGTH = 64 * 1024;
    /** A DIMSE command set is a few hundred bytes; more is a peer feeding us fragments to fill the heap. */
    static final int MAX_COMMAND_LENGTH = 64 * 1024;
    /** After an A-ABORT, how long and how much we read and discard so that the peer sees the abort, not a reset. */
    private static final int LINGER_MILLIS = 1000;
    private static final int LINGER_BYTES = 1 << 20;

    /** Listener settings, detached from the Quarkus config so that tests and tools can build one. */
    /** @param tls null: plain TCP */
    public record Options(String aeTitle, String bindAddress, int port, List<String> allowedCallingAes,
                          int maxAssociations, int socketTimeoutMillis, boolean tcpNoDelay, int maxPduLength,
                          DicomTls.Settings tls, int artimTimeoutMillis, int idleTimeoutMillis,
                          int maxAssociationsPerPeer) {

        public Options(String aeTitle, String bindAddress, int port, List<String> allowedCallingAes,
                       int maxAssociations, int socketTimeoutMillis, boolean tcpNoDelay, int maxPduLength) {
            this(aeTitle, bindAddress, port, allowedCallingAes, maxAssociations, socketTimeoutMillis, tcpNoDelay,
                    maxPduLength, null);
        }

        /** The ListenerConfig defaults for ARTIM (10 s) and idle (60 s); per peer twice the total, i.e. no per-peer cap. */
        public Options(String aeTitle, String bindAddress, int port, List<String> allowedCallingAes,
                       int maxAssociations, int socketTimeoutMillis, boolean tcpNoDelay, int maxPduLength,
                       DicomTls.Settings tls) {
            this(aeTitle, bindAddress, port, allowedCallingAes, maxAssociations, socketTimeoutMillis, tcpNoDelay,
                    maxPduLength, tls, 10_000, 60_000, 2 * Math.max(1, maxAssociations));
        }

        public Options withTls(DicomTls.Settings settings) {
            return new Options(aeTitle, bindAddress, port, allowedCallingAes, maxAssociations, socketTimeoutMillis,
                    tcpNoDelay, maxPduLength, settings, artimTimeoutMillis, idleTimeoutMillis, maxAssociationsPerPeer);
        }

        public Options withTimers(int artimMillis, int idleMillis, int perPeer) {
            return new Options(aeTitle, bindAddress, port, allowedCallingAes, maxAssociations, socketTimeoutMillis,
                    tcpNoDelay, maxPduLength, tls, artimMillis, idleMillis, perPeer);
        }

        public static Options from(ListenerConfig c) {
            ListenerConfig.Tls t = c.tls();
            DicomTls.Settings tls = !t.enabled() ? null : new DicomTls.Settings(t.keyStore().orElse(null),
                    t.keyStorePassword().orElse(null), t.keyStoreType(), t.trustStore().orElse(null),
                    t.trustStorePassword().orElse(null), t.trustStoreType(), t.clientAuth(), t.protocols(),
                    t.cipherSuites().orElse(List.of()), false);
            return new Options(c.aeTitle(), c.bindAddress(), c.port(), c.allowedCallingAes().orElse(List.of()),
                    c.maxAssociations(), (int) c.socketTimeout().toMillis(), c.tcpNoDelay(), c.maxPduLength(), tls,
                    (int) c.artimTimeout().toMillis(), (int) c.idleTimeout().toMillis(), c.maxAssociationsPerPeer());
        }
    }

    private final Options options;
    private final InstanceStore store;
    private final ScpObserver observer;
    private final Semaphore slots;
    private final ExecutorService workers;
    private final Set<Socket> open = ConcurrentHashMap.newKeySet();
    /** Open connections by remote address, for {@link Options#maxAssociationsPerPeer()}. */
    private final ConcurrentHashMap<InetAddress, Integer> perPeer = new ConcurrentHashMap<>();
    private final AtomicLong associationIds = new AtomicLong();
    private final PresentationContextSelectionPolicy policy = new Policy();
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "dicom-release-timer");
        t.setDaemon(true);
        return t;
    });
    private volatile ServerSocket server;
    private volatile Thread acceptor;

    public StoreScp(Options options, InstanceStore store, ScpObserver observer) {
        this.options = options;
        this.store = store;
        this.observer = observer == null ? ScpObserver.NONE : observer;
        this.slots = new Semaphore(Math.max(1, options.maxAssociations()));
        // One more thread than slots, so that the over-the-limit association can still be answered with a reject.
        this.workers = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "dicom-assoc");
            t.setDaemon(true);
            return t;
        });
    }

    /** Binds and starts accepting. */
    public synchronized void start() throws IOException {
        if (server != null) {
            return;
        }
        // the TLS handshake runs on the association thread (first read), so a slow or plain peer cannot stall accept()
        ServerSocket s = options.tls() == null ? new ServerSocket() : DicomTls.serverSocket(options.tls());
        s.setReuseAddress(true);
        s.bind(new InetSocketAddress(InetAddress.getByName(options.bindAddress()), options.port()), 64);
        server = s;
        acceptor = new Thread(this::acceptLoop, "dicom-accept-" + s.getLocalPort());
        acceptor.setDaemon(true);
        acceptor.start();
        LOG.infof("DICOM listener %s bound on %s:%d%s", options.aeTitle(), options.bindAddress(), s.getLocalPort(),
                options.tls() == null ? "" : " (" + options.tls() + ")");
    }

    public boolean isBound() {
        ServerSocket s = server;
        return s != null && s.isBound() && !s.isClosed();
    }

    /** The bound port (useful with port 0), or -1. */
    public int port() {
        ServerSocket s = server;
        return s == null ? -1 : s.getLocalPort();
    }

    @Override
    public synchronized void close() {
        ServerSocket s = server;
        server = null;
        if (s != null) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
        for (Socket socket : open) {
            try {
                socket.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
        workers.shutdownNow();
        timer.shutdownNow();
        try {
            workers.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private void acceptLoop() {
        ServerSocket s = server;
        while (s != null && !s.isClosed()) {
            try {
                Socket socket = s.accept();
                InetAddress remote = socket.getInetAddress();
                int n = perPeer.merge(remote, 1, Integer::sum);
                if (n > options.maxAssociationsPerPeer()) {
                    // closed unread, here: reading a reject's request would give the peer a thread of ours
                    release(remote);
                    closeQuietly(socket);
                    observer.associationRejected("PEER_LIMIT_EXCEEDED");
                    LOG.debugf("closed connection from %s: %d connections from it already", remote.getHostAddress(),
                            options.maxAssociationsPerPeer());
                    continue;
                }
                // the TLS handshake and every read happen on the connection's own thread: accept never waits on a peer
                workers.execute(() -> {
                    try {
                        serve(socket);
                    } finally {
                        release(remote);
                    }
                });
            } catch (IOException e) {
                if (!s.isClosed()) {
                    LOG.warnf("accept failed: %s", e.getMessage());
                }
            } catch (RuntimeException e) {
                LOG.error("accept loop", e);
            }
        }
    }

    private void release(InetAddress remote) {
        perPeer.computeIfPresent(remote, (k, v) -> v <= 1 ? null : v - 1);
    }

    private static void closeQuietly(Socket socket) {
        try {
            socket.close();
        } catch (IOException ignored) {
            // closing anyway
        }
    }

    private void serve(Socket socket) {
        open.add(socket);
        AtomicBoolean requested = new AtomicBoolean();
        AtomicBoolean artimExpired = new AtomicBoolean();
        // ARTIM (PS3.8 9.1.5): the whole A-ASSOCIATE-RQ, TLS handshake included, within the timeout, however
        // slowly the peer drips it (a read timeout alone would restart with every byte)
        ScheduledFuture<?> artim = timer.schedule(() -> {
            if (!requested.get() && artimExpired.compareAndSet(false, true)) {
                closeQuietly(socket);
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
                reject(socket, Pdu.RejectResult.PERMANENT, Pdu.RejectSource.SERVICE_USER,
                        Pdu.RejectReason.CALLED_AE_TITLE_NOT_RECOGNIZED);
                observer.associationRejected("CALLED_AE_NOT_RECOGNIZED");
                LOG.infof("rejected association from %s: called AE not recognized", socket.getInetAddress());
                return;
            }
            if (!callingAllowed(calling, socket.getInetAddress())) {
                reject(socket, Pdu.RejectResult.PERMANENT, Pdu.RejectSource.SERVICE_USER,
                        Pdu.RejectReason.CALLING_AE_TITLE_NOT_RECOGNIZED);
                observer.associationRejected("CALLING_AE_NOT_RECOGNIZED");
                LOG.infof("rejected association from %s: calling AE %s not recognized", socket.getInetAddress(), calling);
                return;
            }
            if (!slots.tryAcquire()) {
                reject(socket, Pdu.RejectResult.TRANSIENT, Pdu.RejectSource.SERVICE_PROVIDER_PRESENTATION,
                        Pdu.RejectReason.LOCAL_LIMIT_EXCEEDED);
                observer.associationRejected("LOCAL_LIMIT_EXCEEDED");
                LOG.warnf("rejected association from %s: %d associations open", calling, options.maxAssociations());
                return;
            }
            try {
                runAssociation(socket, request);
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
        if (!artimExpired.get() && !(e instanceof java.net.SocketTimeoutException)) {
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

    private void runAssociation(Socket socket, byte[] request) throws IOException {
        Association association;
        Thread self = Thread.currentThread();
        AtomicBoolean ended = new AtomicBoolean();
        AtomicBoolean finished = new AtomicBoolean();
        AtomicReference<AssociationInfo> infoRef = new AtomicReference<>();
        Runnable released = () -> {
            AssociationInfo i = infoRef.get();
            if (i != null && ended.compareAndSet(false, true)) {
                store.associationEnded(i);
            }
            // cut PixelMed's fixed post-release wait short: the peer has what it needs
            timer.schedule(() -> {
                synchronized (ended) {
                    if (!finished.get()) {
                        self.interrupt();
                    }
                }
            }, 20, TimeUnit.MILLISECONDS);
        };
        String remote = socket.getInetAddress().getHostAddress();
        PduGuardInputStream guarded = new PduGuardInputStream(socket.getInputStream(), options.maxPduLength(),
                (reason, abortReason, detail) -> abort(socket, reason, abortReason, detail));
        try {
            association = AssociationFactory.createNewAssociation(new ReplaySocket(socket, request, guarded, released),
                    options.aeTitle(),
                    options.maxPduLength(), AssociationFactory.getDefaultReceiveBufferSize(),
                    AssociationFactory.getDefaultSendBufferSize(), policy);
        } catch (DicomNetworkException e) {
            observer.associationRejected("NEGOTIATION_FAILED");
            LOG.infof("association negotiation failed: %s", e.getMessage());
            return;
        }
        AssociationInfo info = new AssociationInfo(associationIds.incrementAndGet(), association.getCallingAETitle(),
                association.getCalledAETitle(), socket.getInetAddress().getHostAddress());
        infoRef.set(info);
        observer.associationAccepted(info);
        AtomicBoolean idleClosed = new AtomicBoolean();
        long idleNanos = options.idleTimeoutMillis() * 1_000_000L;
        long every = Math.max(50, Math.min(1000, options.idleTimeoutMillis() / 4));
        ScheduledFuture<?> idle = timer.scheduleWithFixedDelay(() -> {
            if (System.nanoTime() - guarded.lastPduNanos() > idleNanos && idleClosed.compareAndSet(false, true)) {
                // closed, not aborted: writing an A-ABORT could block this shared timer on a peer that does not read
                observer.associationAborted("IDLE_TIMEOUT");
                LOG.infof("closed association %d from %s: no PDU for %d ms", info.id(), remote, options.idleTimeoutMillis());
                closeQuietly(socket);
            }
        }, every, every, TimeUnit.MILLISECONDS);
        try {
            while (true) {
                DimseHandler handler = new DimseHandler(info, socket);
                association.setReceivedDataHandler(handler);
                try {
                    association.waitForPDataPDUsUntilHandlerReportsDone();
                } finally {
                    handler.discardUnfinished();
                }
                if (handler.response == null) {
                    association.abort();
                    return;
                }
                association.send(handler.presentationContextId, handler.response, null);
                // the peer may take its time after an answer; the idle clock runs from what we sent, too
                guarded.touch();
            }
        } catch (AReleaseException e) {
            LOG.debugf("association %d released", info.id());
        } catch (DicomNetworkException e) {
            LOG.debugf("association %d ended: %s", info.id(), e.getMessage());
        } finally {
            idle.cancel(false);
            if (ended.compareAndSet(false, true)) {
                store.associationEnded(info);
            }
            synchronized (ended) {
                // the thread goes back to the pool: no interrupt meant for this association may reach the next
                finished.set(true);
                Thread.interrupted();
            }
        }
    }

    /**
     * Receives one DIMSE request. PixelMed calls it for every P-DATA PDU; it must never throw for bad
     * input, because PixelMed would then drop the association without a response.
     */
    private final class DimseHandler extends CompositeResponseHandler {
        private final AssociationInfo association;
        private final Socket socket;
        private final ByteArrayOutputStream command = new ByteArrayOutputStream(256);
        private byte presentationContextId;
        private byte[] response;
        private CStoreRequestCommandMessage store;
        private String transferSyntax;
        private Path temporary;
        private FileChannel channel;
        private long bytes;
        private int failureStatus = -1;
        private String failureReason;

        DimseHandler(AssociationInfo association, Socket socket) {
            this.association = association;
            this.socket = socket;
        }

        @Override
        protected void evaluateStatusAndSetSuccess(AttributeList list) {
            // only used by PixelMed's own SCU handlers
        }

        @Override
        public void sendPDataIndication(PDataPDU pdu, Association a) throws DicomNetworkException {
            for (Object o : pdu.getPDVList()) {
                PresentationDataValue pdv = (PresentationDataValue) o;
                if (pdv.isCommand()) {
                    if (command.size() + pdv.getValue().length > MAX_COMMAND_LENGTH) {
                        abort(socket, "COMMAND_TOO_LONG", Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE,
                                "DIMSE command fragments beyond " + MAX_COMMAND_LENGTH + " bytes");
                        throw new DicomNetworkException("DIMSE command too long");
                    }
                    command.writeBytes(pdv.getValue());
                    if (pdv.isLastFragment()) {
                        presentationContextId = pdv.getPresentationContextID();
                        onCommand(a);
                    }
                } else if (store != null) {
                    onData(pdv.getValue());
                    if (pdv.isLastFragment()) {
                        finishStore();
                    }
                } else {
                    throw new DicomNetworkException("data PDV without a C-STORE command");
                }
            }
        }

        private void onCommand(Association a) throws DicomNetworkException {
            AttributeList list;
            int field;
            try {
                list = CompositeResponseHandler.getAttributeListFromCommandOrData(command.toByteArray(),
                        DicomUids.IMPLICIT_VR_LE);
                field = com.pixelmed.dicom.Attribute.getSingleIntegerValueOrDefault(list, TagFromName.CommandField, -1);
            } catch (DicomException | IOException | RuntimeException e) {
                throw new DicomNetworkException("unreadable DIMSE command: " + e.getMessage());
            }
            try {
                if (field == 0x0030) {
                    CEchoRequestCommandMessage echo = new CEchoRequestCommandMessage(list);
                    response = new CEchoResponseCommandMessage(echo.getAffectedSOPClassUID(), echo.getMessageID(),
                            SUCCESS).getBytes();
                    setDone(true);
                } else if (field == 0x0001) {
                    store = new CStoreRequestCommandMessage(list);
                    transferSyntax = a.getTransferSyntaxForPresentationContextID(presentationContextId);
                    openTemporary();
                } else {
                    throw new DicomNetworkException("unsupported DIMSE command 0x" + Integer.toHexString(field));
                }
            } catch (DicomException | IOException e) {
                throw new DicomNetworkException("cannot handle DIMSE command: " + e.getMessage());
            }
        }

        private void openTemporary() {
            if (!DicomUids.STORAGE_SOP_CLASSES.contains(store.getAffectedSOPClassUID())) {
                fail(SOP_CLASS_NOT_SUPPORTED, "SOP_CLASS_NOT_SUPPORTED");
                return;
            }
            try {
                temporary = StoreScp.this.store.newTemporaryFile();
                channel = FileChannel.open(temporary, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
                ByteArrayOutputStream meta = new ByteArrayOutputStream(512);
                DicomOutputStream dout = new DicomOutputStream(meta, DicomUids.EXPLICIT_VR_LE, null);
                new FileMetaInformation(store.getAffectedSOPClassUID(), store.getAffectedSOPInstanceUID(),
                        transferSyntax, association.callingAe()).getAttributeList().write(dout);
                dout.flush();
                write(meta.toByteArray());
            } catch (InstanceStore.InsufficientStorageException e) {
                fail(OUT_OF_RESOURCES, "OUT_OF_RESOURCES");
                LOG.warnf("C-STORE %s refused: %s", store.getAffectedSOPInstanceUID(), e.getMessage());
            } catch (IOException | DicomException | RuntimeException e) {
                fail(outOfSpace(e) ? OUT_OF_RESOURCES : PROCESSING_FAILURE, outOfSpace(e) ? "OUT_OF_RESOURCES" : "IO_ERROR");
                LOG.warnf("C-STORE %s cannot be spooled: %s", store.getAffectedSOPInstanceUID(), e.toString());
            }
        }

        private void onData(byte[] value) {
            if (failureStatus >= 0 || channel == null) {
                return;
            }
            try {
                write(value);
            } catch (IOException | RuntimeException e) {
                fail(outOfSpace(e) ? OUT_OF_RESOURCES : PROCESSING_FAILURE, outOfSpace(e) ? "OUT_OF_RESOURCES" : "IO_ERROR");
                LOG.warnf("C-STORE %s write failed: %s", store.getAffectedSOPInstanceUID(), e.toString());
            }
        }

        private void write(byte[] value) throws IOException {
            ByteBuffer b = ByteBuffer.wrap(value);
            while (b.hasRemaining()) {
                channel.write(b);
            }
            bytes += value.length;
        }

        private void finishStore() {
            int status = failureStatus;
            String sopInstance = store.getAffectedSOPInstanceUID();
            closeChannel();
            if (status < 0) {
                status = commit(sopInstance);
            } else {
                observer.instanceRejected(failureReason, status);
            }
            if (status != SUCCESS) {
                deleteTemporary();
            }
            temporary = null;
            try {
                response = new CStoreResponseCommandMessage(store.getAffectedSOPClassUID(), sopInstance,
                        store.getMessageID(), status).getBytes();
            } catch (DicomException | IOException e) {
                response = null;
                LOG.error("cannot encode C-STORE response", e);
            }
            setDone(true);
        }

        private int commit(String sopInstance) {
            InstanceHeader header;
            try {
                header = DicomFiles.readHeader(temporary);
            } catch (IOException | RuntimeException e) {
                observer.instanceRejected("CANNOT_UNDERSTAND", CANNOT_UNDERSTAND);
                LOG.infof("C-STORE %s: data set cannot be parsed: %s", sopInstance, e.getMessage());
                return CANNOT_UNDERSTAND;
            }
            try {
                DataSetExtent.check(temporary, transferSyntax);
            } catch (IOException e) {
                // acknowledging it would tell the sender it may forget an instance we cannot use
                observer.instanceRejected("INCOMPLETE_DATA_SET", CANNOT_UNDERSTAND);
                LOG.infof("C-STORE %s: %s", sopInstance, e.getMessage());
                return CANNOT_UNDERSTAND;
            }
            if (!DicomUids.isValidUid(header.sopInstanceUid()) || !header.sopInstanceUid().equals(sopInstance)
                    || !DicomUids.isValidUid(header.studyInstanceUid())) {
                observer.instanceRejected("UID_MISMATCH", UID_MISMATCH);
                LOG.infof("C-STORE %s: SOP Instance UID / Study Instance UID missing, invalid or not the one in the command",
                        sopInstance);
                return UID_MISMATCH;
            }
            try {
                if (StoreScp.this.store.commit(temporary, header, association)) {
                    observer.instanceStored(header, bytes);
                } else {
                    observer.duplicateInstance(header);
                }
                return SUCCESS;
            } catch (InstanceStore.InsufficientStorageException e) {
                observer.instanceRejected("OUT_OF_RESOURCES", OUT_OF_RESOURCES);
                LOG.warnf("C-STORE %s refused: %s", sopInstance, e.getMessage());
                return OUT_OF_RESOURCES;
            } catch (IOException | RuntimeException e) {
                boolean space = outOfSpace(e);
                observer.instanceRejected(space ? "OUT_OF_RESOURCES" : "IO_ERROR", space ? OUT_OF_RESOURCES : PROCESSING_FAILURE);
                LOG.warnf("C-STORE %s not durable: %s", sopInstance, e.toString());
                return space ? OUT_OF_RESOURCES : PROCESSING_FAILURE;
            }
        }

        private void fail(int status, String reason) {
            if (failureStatus < 0) {
                failureStatus = status;
                failureReason = reason;
            }
        }

        private void closeChannel() {
            if (channel != null) {
                try {
                    channel.close();
                } catch (IOException e) {
                    fail(PROCESSING_FAILURE, "IO_ERROR");
                }
                channel = null;
            }
        }

        private void deleteTemporary() {
            if (temporary != null) {
                try {
                    Files.deleteIfExists(temporary);
                } catch (IOException e) {
                    LOG.warnf("cannot delete %s: %s", temporary, e.getMessage());
                }
            }
        }

        /** The association ended in the middle of a data set: drop the partial file. */
        void discardUnfinished() {
            if (!isDone()) {
                closeChannel();
                deleteTemporary();
            }
        }
    }

    private static boolean outOfSpace(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            String m = t.getMessage();
            if (m != null && m.toLowerCase(Locale.ROOT).contains("no space left")) {
                return true;
            }
            if (t instanceof InstanceStore.InsufficientStorageException) {
                return true;
            }
        }
        return false;
    }

    /** Accepts our SOP classes with our transfer syntaxes, one presentation context at a time. */
    private final class Policy implements PresentationContextSelectionPolicy {
        @Override
        public LinkedList applyPresentationContextSelectionPolicy(LinkedList contexts, int associationNumber, int debugLevel) {
            return applyPresentationContextSelectionPolicy(contexts, associationNumber);
        }

        @Override
        @SuppressWarnings("unchecked")
        public LinkedList applyPresentationContextSelectionPolicy(LinkedList contexts, int associationNumber) {
            for (Object o : contexts) {
                PresentationContext pc = (PresentationContext) o;
                String abstractSyntax = pc.getAbstractSyntaxUID();
                List<String> ours;
                if (DicomUids.VERIFICATION.equals(abstractSyntax)) {
                    ours = DicomUids.VERIFICATION_TRANSFER_SYNTAXES;
                } else if (DicomUids.STORAGE_SOP_CLASSES.contains(abstractSyntax)) {
                    ours = DicomUids.STORAGE_TRANSFER_SYNTAXES;
                } else {
                    ours = null;
                }
                List<String> proposed = new ArrayList<>();
                for (Object ts : pc.getTransferSyntaxUIDs()) {
                    proposed.add(String.valueOf(ts).trim());
                }
                String chosen = null;
                if (ours != null) {
                    for (String ts : ours) {
                        if (proposed.contains(ts)) {
                            chosen = ts;
                            break;
                        }
                    }
                }
                pc.newTransferSyntaxUIDs();
                if (chosen != null) {
                    pc.addTransferSyntaxUID(chosen);
                    pc.setResultReason((byte) Pdu.PresentationContextResult.ACCEPTANCE);
                } else {
                    pc.addTransferSyntaxUID(DicomUids.IMPLICIT_VR_LE);
                    pc.setResultReason((byte) (ours == null ? Pdu.PresentationContextResult.ABSTRACT_SYNTAX_NOT_SUPPORTED
                            : Pdu.PresentationContextResult.TRANSFER_SYNTAXES_NOT_SUPPORTED));
                    observer.presentationContextRejected(abstractSyntax,
                            ours == null ? "ABSTRACT_SYNTAX_NOT_SUPPORTED" : "TRANSFER_SYNTAX_NOT_SUPPORTED");
                }
            }
            return contexts;
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
            abort(socket, length > MAX_ASSOCIATE_RQ_LENGTH ? "PDU_LENGTH_EXCEEDED" : "PDU_LENGTH_INVALID",
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

    /** A-ASSOCIATE-RJ (PS3.8 9.3.4). */
    private static void reject(Socket socket, int result, int source, int reason) throws IOException {
        OutputStream out = socket.getOutputStream();
        out.write(Pdu.associateReject(result, source, reason));
        out.flush();
        linger(socket);
    }

    /**
     * A-ABORT from the service provider for a protocol violation: one log line (no stack trace), one count
     * by reason, and the socket is closed. The caller's read then fails, so nothing is allocated for the PDU.
     */
    private void abort(Socket socket, String reason, int abortReason, String detail) {
        observer.associationAborted(reason);
        LOG.warnf("aborted association from %s: %s", socket.getInetAddress().getHostAddress(), detail);
        try {
            OutputStream out = socket.getOutputStream();
            out.write(Pdu.abort(Pdu.AbortSource.SERVICE_PROVIDER, abortReason));
            out.flush();
            linger(socket);
        } catch (IOException | RuntimeException e) {
            // peer already gone
        } finally {
            try {
                socket.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
    }

    /**
     * Gives the peer the chance to read our last PDU before we close: closing with unread input would send
     * a TCP reset, which can destroy the PDU in the peer's receive buffer. Bounded in time and bytes, so a
     * peer that keeps sending cannot hold us here.
     */
    private static void linger(Socket socket) {
        try {
            socket.shutdownOutput();
            long end = System.nanoTime() + LINGER_MILLIS * 1_000_000L;
            byte[] sink = new byte[8192];
            int total = 0;
            InputStream in = socket.getInputStream();
            while (total < LINGER_BYTES) {
                long left = (end - System.nanoTime()) / 1_000_000;
                if (left <= 0) {
                    break;
                }
                socket.setSoTimeout((int) left);
                int n = in.read(sink);
                if (n < 0) {
                    break;
                }
                total += n;
            }
        } catch (IOException | RuntimeException ignored) {
            // peer already gone (on TLS an SSLException, not a SocketException)
        }
    }
}
