package org.cxrgateway.dicom;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import org.jboss.logging.Logger;

/**
 * How the listener ends a connection it refuses: A-ASSOCIATE-RJ (PS3.8 9.3.4) or A-ABORT (9.3.8), written
 * so that the peer can read it before the socket closes.
 */
final class AssociationRefusals {

    private static final Logger LOG = Logger.getLogger(AssociationRefusals.class);

    /** After our last PDU, how long and how much we read and discard so that the peer sees it, not a reset. */
    private static final int LINGER_MILLIS = 1000;
    private static final int LINGER_BYTES = 1 << 20;

    private final ScpObserver observer;

    AssociationRefusals(ScpObserver observer) {
        this.observer = observer;
    }

    /** A-ASSOCIATE-RJ with named result, source and reason ({@link Pdu.RejectResult} ff.). */
    static void reject(Socket socket, int result, int source, int reason) throws IOException {
        OutputStream out = socket.getOutputStream();
        out.write(Pdu.associateReject(result, source, reason));
        out.flush();
        linger(socket);
    }

    /**
     * A-ABORT from the service provider for a protocol violation: one log line (no stack trace), one count
     * by reason, and the socket is closed. The caller's read then fails, so nothing is allocated for the PDU.
     */
    void abort(Socket socket, String reason, int abortReason, String detail) {
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
            closeQuietly(socket);
        }
    }

    static void closeQuietly(Socket socket) {
        try {
            socket.close();
        } catch (IOException ignored) {
            // closing anyway
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
