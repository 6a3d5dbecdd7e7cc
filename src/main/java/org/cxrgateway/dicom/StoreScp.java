package org.cxrgateway.dicom;

import java.io.Closeable;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.jboss.logging.Logger;

/**
 * C-ECHO and C-STORE SCP on PixelMed's association layer: the listening socket and its accept loop, in
 * layers as pynetdicom and dcm4che have them:
 * <ul>
 *   <li>{@link AssociationAcceptor}: the association policy (ARTIM, A-ASSOCIATE-RQ length, AE checks,
 *       allow-list, association cap), with refusals by {@link AssociationRefusals} and the {@link Pdu} codec;</li>
 *   <li>{@link DimseDispatcher}: negotiation ({@link PresentationContextPolicy}), DIMSE command reading and
 *       dispatch, idle timeout;</li>
 *   <li>{@link CStoreService}: the data set to the spool and the {@link InstanceStore}, ending in a
 *       {@link StoreOutcome}.</li>
 * </ul>
 *
 * <p>Why not {@code StorageSOPClassSCPDispatcher}: PixelMed always answers C-STORE with Success
 * (0000), and it does so after writing the file without fsync; an exception in its
 * ReceivedObjectHandler drops the association without any response. It also cannot reject by
 * calling AE, cap associations or set TCP_NODELAY. So we keep PixelMed for PDU parsing,
 * association negotiation and DIMSE command encoding, and own the rest.
 *
 * <p>With {@link Options#tls()} set, the port speaks DICOM TLS only (PS3.15 Annex B; see {@link DicomTls}).
 * PS3.15 registers port 2762 for DICOM over TLS (104 / 11112 for plain DICOM); we bind the configured
 * port either way, because sites assign their own and a port is either TLS or plain, never both.
 */
public final class StoreScp implements Closeable {

    private static final Logger LOG = Logger.getLogger(StoreScp.class);

    /**
     * Listener settings, detached from the Quarkus config so that tests and tools can build one.
     *
     * @param tls null: plain TCP
     */
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
    private final ScpObserver observer;
    private final ExecutorService workers;
    /** Open connections by remote address, for {@link Options#maxAssociationsPerPeer()}. */
    private final ConcurrentHashMap<InetAddress, Integer> perPeer = new ConcurrentHashMap<>();
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "dicom-release-timer");
        t.setDaemon(true);
        return t;
    });
    private final AssociationAcceptor acceptor;
    private volatile ServerSocket server;
    private volatile Thread acceptThread;

    public StoreScp(Options options, InstanceStore store, ScpObserver observer) {
        this.options = options;
        this.observer = observer == null ? ScpObserver.NONE : observer;
        AssociationRefusals refusals = new AssociationRefusals(this.observer);
        this.acceptor = new AssociationAcceptor(options, this.observer, timer, refusals,
                new DimseDispatcher(options, store, this.observer, timer, refusals));
        // unbounded, so that the association over the limit can still be answered with a reject
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
        acceptThread = new Thread(this::acceptLoop, "dicom-accept-" + s.getLocalPort());
        acceptThread.setDaemon(true);
        acceptThread.start();
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
        acceptor.closeAll();
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
                    AssociationRefusals.closeQuietly(socket);
                    observer.associationRejected("PEER_LIMIT_EXCEEDED");
                    LOG.debugf("closed connection from %s: %d connections from it already", remote.getHostAddress(),
                            options.maxAssociationsPerPeer());
                    continue;
                }
                // the TLS handshake and every read happen on the connection's own thread: accept never waits on a peer
                workers.execute(() -> {
                    try {
                        acceptor.serve(socket);
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
}
