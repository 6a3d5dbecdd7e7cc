package org.cxrgateway.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import org.cxrgateway.dicom.Pdu;
import org.cxrgateway.testing.RawStoreScu;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * ARTIM, the idle timeout and the per-peer cap over real TCP (issue 11): slow, silent and greedy peers are
 * closed and counted by reason, and a well-behaved echoscu is still answered at once meanwhile. Peers use
 * distinct loopback source addresses (127.0.0.x) so that the per-peer cap sees them as distinct hosts.
 */
class ListenerTimersTest {

    private static final String CR = "1.2.840.10008.5.1.4.1.1.1";
    private IngestHarness harness;

    @AfterEach
    void stop() {
        if (harness != null) {
            harness.close();
        }
    }

    private void start(int artimMillis, int idleMillis, int perPeer) throws Exception {
        harness = new IngestHarness(Fixtures.newDir("spool"), 0, List.of(), new IngestHarness.Collector(),
                ListenerIngestTest.QUIET, null, o -> o.withTimers(artimMillis, idleMillis, perPeer));
    }

    private Socket connect(String from) throws IOException {
        Socket s = new Socket();
        s.bind(new InetSocketAddress(from, 0));
        s.connect(new InetSocketAddress("127.0.0.1", harness.port()), 5000);
        s.setSoTimeout(10_000);
        return s;
    }

    /** Milliseconds until the listener closes the connection (EOF or reset). */
    private static long millisUntilClosed(Socket s, long t0) {
        try {
            InputStream in = s.getInputStream();
            while (in.read() >= 0) {
                // discard anything (an A-ABORT) until the close
            }
        } catch (IOException e) {
            // a reset is a close too
        }
        return (System.nanoTime() - t0) / 1_000_000;
    }

    private long echoMillis() throws Exception {
        long t0 = System.nanoTime();
        Fixtures.Result echo = Fixtures.run(null, "echoscu", "-aec", "CXRGATEWAY", "127.0.0.1", "" + harness.port());
        assertEquals(0, echo.exit(), echo.output());
        return (System.nanoTime() - t0) / 1_000_000;
    }

    @Test
    void artimClosesSilentAndDrippingConnections() throws Exception {
        start(800, 60_000, 8);
        long t0 = System.nanoTime();
        try (Socket silent = connect("127.0.0.2"); Socket drip = connect("127.0.0.3")) {
            byte[] rq = RawStoreScu.associateRq("SLOW", "CXRGATEWAY", CR);
            OutputStream out = drip.getOutputStream();
            // one byte every 100 ms: each read succeeds, only the ARTIM deadline ends it
            Thread dripper = new Thread(() -> {
                try {
                    for (byte b : rq) {
                        out.write(b);
                        out.flush();
                        Thread.sleep(100);
                    }
                } catch (IOException | InterruptedException e) {
                    // closed by the listener
                }
            });
            dripper.start();
            long silentClosed = millisUntilClosed(silent, t0);
            long dripClosed = millisUntilClosed(drip, t0);
            dripper.interrupt();
            System.out.printf("ARTIM 800 ms: silent connection closed after %d ms, dripping one after %d ms%n",
                    silentClosed, dripClosed);
            assertTrue(silentClosed >= 700 && silentClosed < 3000, "silent closed after " + silentClosed);
            assertTrue(dripClosed >= 700 && dripClosed < 3000, "dripping closed after " + dripClosed);
        }
        assertEquals(2, harness.awaitCount(2, "cxr.dicom.associations", "result", "rejected", "reason", "ARTIM_EXPIRED"));
        echoMillis();
    }

    @Test
    void idleAssociationIsClosed() throws Exception {
        start(10_000, 700, 8);
        try (Socket s = connect("127.0.0.2")) {
            s.getOutputStream().write(RawStoreScu.associateRq("IDLE", "CXRGATEWAY", CR));
            DataInputStream in = new DataInputStream(s.getInputStream());
            assertEquals(Pdu.A_ASSOCIATE_AC, in.readUnsignedByte());
            in.readUnsignedByte();
            in.readFully(new byte[in.readInt()]);
            long t0 = System.nanoTime();
            // half a PDU, then nothing: byte-level activity must not keep it open
            s.getOutputStream().write(Pdu.header(Pdu.P_DATA_TF, 100));
            long closed = millisUntilClosed(s, t0);
            System.out.printf("idle timeout 700 ms: association closed after %d ms%n", closed);
            assertTrue(closed >= 500 && closed < 3000, "closed after " + closed);
        }
        assertEquals(1, harness.awaitCount(1, "cxr.dicom.associations", "result", "aborted", "reason", "IDLE_TIMEOUT"));
        echoMillis();
    }

    @Test
    void onePeerCannotTakeEverySlotAndAcceptNeverWaits() throws Exception {
        start(5_000, 60_000, 2);
        List<Socket> held = new ArrayList<>();
        try {
            // a greedy peer: two silent connections, then more that are closed unread
            held.add(connect("127.0.0.2"));
            held.add(connect("127.0.0.2"));
            Thread.sleep(200);
            long t0 = System.nanoTime();
            try (Socket third = connect("127.0.0.2")) {
                long closed = millisUntilClosed(third, t0);
                assertTrue(closed < 1000, "over-the-cap connection closed at once, took " + closed);
            }
            // many silent peers at once (one connection each): none holds the accept loop
            for (int i = 10; i < 40; i++) {
                held.add(connect("127.0.0." + i));
            }
            long echo = echoMillis();
            System.out.printf("per-peer cap 2: third connection refused; echo with 32 silent connections open: %d ms%n", echo);
            assertTrue(echo < 1000, "echo took " + echo + " ms");
        } finally {
            for (Socket s : held) {
                s.close();
            }
        }
        assertEquals(1, harness.awaitCount(1, "cxr.dicom.associations", "result", "rejected", "reason", "PEER_LIMIT_EXCEEDED"));
    }
}
