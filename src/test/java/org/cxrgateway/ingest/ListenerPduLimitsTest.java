package org.cxrgateway.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.cxrgateway.dicom.Pdu;
import org.cxrgateway.testing.RawStoreScu;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/**
 * A peer's declared lengths are never allocated on its word (issue 11): over real TCP, each PDU whose
 * length breaks our limits gets A-ABORT (service provider, invalid PDU parameter value), is counted by
 * reason, and the process does not grow; the listener still answers afterwards.
 */
class ListenerPduLimitsTest {

    private static final String CR = "1.2.840.10008.5.1.4.1.1.1";
    private IngestHarness harness;

    @AfterEach
    void stop() {
        if (harness != null) {
            harness.close();
        }
    }

    private IngestHarness start() throws Exception {
        harness = new IngestHarness(Fixtures.newDir("spool"), 0, List.of(), new IngestHarness.Collector(),
                ListenerIngestTest.QUIET);
        return harness;
    }

    /** Associates with a valid A-ASSOCIATE-RQ and returns the socket once A-ASSOCIATE-AC is in. */
    private Socket associate() throws IOException {
        Socket s = new Socket("127.0.0.1", harness.port());
        s.setSoTimeout(10_000);
        s.setTcpNoDelay(true);
        s.getOutputStream().write(RawStoreScu.associateRq("ATTACKER", "CXRGATEWAY", CR));
        DataInputStream in = new DataInputStream(s.getInputStream());
        int type = in.readUnsignedByte();
        in.readUnsignedByte();
        in.readFully(new byte[in.readInt()]);
        assertEquals(Pdu.A_ASSOCIATE_AC, type, "association accepted");
        return s;
    }

    /** Reads until A-ABORT arrives; returns {source, reason}, or fails on anything else. */
    private static int[] awaitAbort(Socket s) throws IOException {
        DataInputStream in = new DataInputStream(s.getInputStream());
        int type = in.readUnsignedByte();
        in.readUnsignedByte();
        long length = in.readInt() & 0xFFFFFFFFL;
        assertEquals(Pdu.A_ABORT, type, "A-ABORT expected, got PDU type " + type);
        assertEquals(Pdu.FIXED_BODY_LENGTH, length);
        byte[] body = new byte[4];
        in.readFully(body);
        return new int[] {body[2] & 0xFF, body[3] & 0xFF};
    }

    private static void assertProviderAbortInvalidParameter(Socket s) throws IOException {
        int[] sr = awaitAbort(s);
        assertEquals(Pdu.AbortSource.SERVICE_PROVIDER, sr[0], "source: service provider");
        assertEquals(Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE, sr[1], "reason: invalid PDU parameter value");
    }

    static long rssKb() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("\\D", ""));
            }
        }
        throw new IOException("no VmRSS");
    }

    @Test
    void threeTwoGigabytePDataHeadersAreAbortedWithoutAllocating() throws Exception {
        start();
        System.gc();
        long rssBefore = rssKb();
        long heapBefore = Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory();
        long t0 = System.nanoTime();
        ExecutorService pool = Executors.newFixedThreadPool(3);
        List<Future<int[]>> results = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            results.add(pool.submit(() -> {
                try (Socket s = associate()) {
                    OutputStream out = s.getOutputStream();
                    // what the issue measured: a P-DATA-TF header declaring 0x7FFFFFF0 bytes, then data coming
                    out.write(Pdu.header(Pdu.P_DATA_TF, 0x7FFFFFF0L));
                    out.write(new byte[64 * 1024]);
                    out.flush();
                    return awaitAbort(s);
                }
            }));
        }
        for (Future<int[]> f : results) {
            int[] sr = f.get(20, TimeUnit.SECONDS);
            assertEquals(Pdu.AbortSource.SERVICE_PROVIDER, sr[0]);
            assertEquals(Pdu.AbortReason.INVALID_PDU_PARAMETER_VALUE, sr[1]);
        }
        pool.shutdown();
        long ms = (System.nanoTime() - t0) / 1_000_000;
        long rssAfter = rssKb();
        long heapAfter = Runtime.getRuntime().totalMemory() - Runtime.getRuntime().freeMemory();
        System.out.printf("3 x 0x7FFFFFF0-byte P-DATA-TF: all aborted in %d ms; RSS %d -> %d MiB (%+d MiB), "
                        + "heap used %d -> %d MiB%n", ms, rssBefore / 1024, rssAfter / 1024, (rssAfter - rssBefore) / 1024,
                heapBefore >> 20, heapAfter >> 20);
        assertTrue(rssAfter - rssBefore < 200 * 1024, "RSS grew by " + (rssAfter - rssBefore) / 1024 + " MiB");
        assertEquals(3, harness.count("cxr.dicom.associations", "result", "aborted", "reason", "PDU_LENGTH_EXCEEDED"));
        assertEchoAnswered();
    }

    @Test
    void pDataOneByteOverTheAdvertisedMaximumIsAbortedAndTheMaximumIsNot() throws Exception {
        start();
        try (Socket s = associate()) {
            // 131072 is the harness's max PDU length: 131073 is over it
            s.getOutputStream().write(Pdu.header(Pdu.P_DATA_TF, 131072 + 1));
            assertProviderAbortInvalidParameter(s);
        }
        try (Socket s = associate()) {
            // exactly the maximum, with a well-formed PDV: accepted as far as the PDU layer goes; the data PDV
            // without a command then ends the association, but not for its length
            byte[] value = new byte[131072 - 6];
            byte[] pdu = Pdu.pData(1, false, false, value, 0, value.length);
            assertEquals(6 + 131072, pdu.length);
            s.getOutputStream().write(pdu);
            s.getOutputStream().flush();
            int r;
            try {
                r = s.getInputStream().read();
            } catch (IOException e) {
                r = -1;
            }
            assertTrue(r == -1 || r == Pdu.A_ABORT, "answered " + r);
        }
        assertEquals(1, harness.count("cxr.dicom.associations", "result", "aborted", "reason", "PDU_LENGTH_EXCEEDED"));
        assertEchoAnswered();
    }

    @Test
    void pdvItemLengthBeyondItsPduIsAborted() throws Exception {
        start();
        try (Socket s = associate()) {
            ByteArrayOutputStream b = new ByteArrayOutputStream();
            b.writeBytes(Pdu.header(Pdu.P_DATA_TF, 64));
            // PDV item length near 2^31 inside a 64-byte P-DATA-TF: PixelMed would allocate it
            b.writeBytes(new byte[] {0x7F, (byte) 0xFF, (byte) 0xFF, (byte) 0xF0, 1, 0x03});
            b.writeBytes(new byte[58]);
            s.getOutputStream().write(b.toByteArray());
            assertProviderAbortInvalidParameter(s);
        }
        assertEquals(1, harness.count("cxr.dicom.associations", "result", "aborted", "reason", "PDV_LENGTH_INVALID"));
        assertEchoAnswered();
    }

    @Test
    void releaseAndAbortOfTheWrongLengthAndUnknownPdusAreAborted() throws Exception {
        start();
        for (int type : new int[] {Pdu.A_RELEASE_RQ, Pdu.A_ABORT}) {
            try (Socket s = associate()) {
                s.getOutputStream().write(Pdu.header(type, 0xFFFFFFF0L));
                assertProviderAbortInvalidParameter(s);
            }
        }
        try (Socket s = associate()) {
            s.getOutputStream().write(Pdu.header(0x55, 10));
            int[] sr = awaitAbort(s);
            assertEquals(Pdu.AbortReason.UNRECOGNIZED_PDU, sr[1]);
        }
        try (Socket s = associate()) {
            s.getOutputStream().write(RawStoreScu.associateRq("ATTACKER", "CXRGATEWAY", CR));
            int[] sr = awaitAbort(s);
            assertEquals(Pdu.AbortReason.UNEXPECTED_PDU, sr[1]);
        }
        assertEquals(2, harness.count("cxr.dicom.associations", "result", "aborted", "reason", "PDU_LENGTH_INVALID"));
        assertEquals(1, harness.count("cxr.dicom.associations", "result", "aborted", "reason", "UNRECOGNIZED_PDU"));
        assertEquals(1, harness.count("cxr.dicom.associations", "result", "aborted", "reason", "UNEXPECTED_PDU"));
        assertEchoAnswered();
    }

    @Test
    void associateRequestOver64KiBIsAbortedUnread() throws Exception {
        start();
        try (Socket s = new Socket("127.0.0.1", harness.port())) {
            s.setSoTimeout(10_000);
            s.getOutputStream().write(Pdu.header(Pdu.A_ASSOCIATE_RQ, 0x7FFFFFF0L));
            assertProviderAbortInvalidParameter(s);
        }
        assertEquals(1, harness.count("cxr.dicom.associations", "result", "aborted", "reason", "PDU_LENGTH_EXCEEDED"));
    }

    @Test
    void endlessCommandFragmentsAreAbortedAtTheCommandLimit() throws Exception {
        start();
        try (Socket s = associate()) {
            s.setSoTimeout(20_000);
            OutputStream out = s.getOutputStream();
            byte[] chunk = new byte[16 * 1024];
            try {
                // command fragments that never end: within a bounded number the listener must give up
                for (int i = 0; i < 64; i++) {
                    out.write(Pdu.pData(1, true, false, chunk, 0, chunk.length));
                }
                out.flush();
            } catch (IOException e) {
                // the listener may close while we are still writing; what it sent first is checked below
            }
            assertProviderAbortInvalidParameter(s);
        }
        assertEquals(1, harness.count("cxr.dicom.associations", "result", "aborted", "reason", "COMMAND_TOO_LONG"));
        assertEchoAnswered();
    }

    private void assertEchoAnswered() throws Exception {
        Fixtures.Result echo = Fixtures.run(null, "echoscu", "-aec", "CXRGATEWAY", "127.0.0.1", "" + harness.port());
        assertEquals(0, echo.exit(), echo.output());
    }
}
