package org.cxrgateway.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import org.cxrgateway.dicom.DicomTls;
import org.cxrgateway.testing.TestPki;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The DICOM TLS listener (PS3.15 Annex B) against dcmtk's storescu built with OpenSSL, with its
 * default BCP 195 non-downgrading profile: through the spool, with certificates from a throw-away CA.
 */
class ListenerTlsTest {

    static Path work;
    static TestPki pki;
    static Path dx;
    static final String STUDY = "1.2.826.0.1.3680043.10.1234.77";
    IngestHarness harness;
    Path spool;
    int sop;

    @BeforeAll
    static void pki() throws Exception {
        work = Fixtures.newDir("tls");
        pki = new TestPki(work.resolve("pki"));
    }

    @AfterEach
    void stop() {
        if (harness != null) {
            harness.close();
        }
    }

    void start(DicomTls.ClientAuth auth) throws Exception {
        spool = Fixtures.newDir("tls-spool");
        harness = new IngestHarness(spool, 0, List.of(), new IngestHarness.Collector(), Duration.ofSeconds(30),
                DicomTls.Settings.server(pki.keyStore("server"), TestPki.PASSWORD, pki.trustStore, TestPki.PASSWORD, auth));
    }

    /** A fresh chest DX; returns its SOP Instance UID. */
    String newDx(Path out) throws Exception {
        String sopUid = STUDY + ".1." + (++sop) + "." + System.nanoTime() % 100000;
        Fixtures.runOk(null, Fixtures.PYTHON, Path.of("src/test/resources/make_source_dx.py").toAbsolutePath().toString(),
                out.toString(), STUDY, STUDY + ".1", sopUid, "PAT-TLS");
        return sopUid;
    }

    /** storescu with the given TLS options (none: plain TCP). */
    Fixtures.Result storescu(Path file, String... tls) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("storescu", "-v", "-aec", "CXRGATEWAY", "-to", "10", "-ta", "10", "-td", "10"));
        cmd.addAll(List.of(tls));
        cmd.addAll(List.of("127.0.0.1", Integer.toString(harness.port()), file.toString()));
        return Fixtures.run(work, cmd.toArray(String[]::new));
    }

    String[] withCert(String identity) {
        return new String[] {"+tls", pki.key(identity).toString(), pki.cert(identity).toString(), "+cf", pki.caPem.toString()};
    }

    String[] anonymous() {
        return new String[] {"+tla", "+cf", pki.caPem.toString()};
    }

    boolean spooled(String sopUid) throws IOException {
        return Files.isRegularFile(spool.resolve("studies").resolve(STUDY).resolve(sopUid + ".dcm"));
    }

    static boolean success(Fixtures.Result r) {
        return r.exit() == 0 && r.output().contains("Received Store Response (Success)");
    }

    /**
     * The TLS rejections counted, once they reach expected (or after 10 s): the listener counts a failed handshake
     * after its side of it ends, so the refused client can exit first (CI saw 1 of 2 once).
     */
    double tlsRejections(double expected) throws InterruptedException {
        return harness.awaitCount(expected, "cxr.dicom.associations", "result", "rejected", "reason", "TLS_HANDSHAKE_FAILED");
    }

    @Test
    void mutualTlsStoreLandsInTheSpoolAndPlainPeerIsRefusedWithoutHarm() throws Exception {
        start(DicomTls.ClientAuth.NEED);
        Path first = work.resolve("tls-1.dcm");
        String firstUid = newDx(first);
        Fixtures.Result ok = storescu(first, withCert("client"));
        assertTrue(success(ok), ok.output());
        assertTrue(spooled(firstUid), "instance received over TLS is in the spool");

        // a plain DICOM peer on the TLS port: its A-ASSOCIATE-RQ is not a TLS record
        Path plain = work.resolve("plain.dcm");
        String plainUid = newDx(plain);
        Fixtures.Result refused = storescu(plain);
        assertNotEquals(0, refused.exit(), refused.output());
        assertFalse(refused.output().contains("Received Store Response"), refused.output());
        assertFalse(spooled(plainUid));
        assertEquals(1, tlsRejections(1));

        // the listener is still serving
        Path second = work.resolve("tls-2.dcm");
        String secondUid = newDx(second);
        Fixtures.Result again = storescu(second, withCert("client"));
        assertTrue(success(again), again.output());
        assertTrue(spooled(secondUid));
        assertEquals(2, harness.count("cxr.dicom.associations", "result", "accepted"));
    }

    @Test
    void needRefusesClientsWithoutATrustedCertificate() throws Exception {
        start(DicomTls.ClientAuth.NEED);
        Path f = work.resolve("need.dcm");
        String uid = newDx(f);

        Fixtures.Result noCert = storescu(f, anonymous());
        assertNotEquals(0, noCert.exit(), noCert.output());
        assertFalse(noCert.output().contains("Received Store Response"), noCert.output());

        Fixtures.Result rogue = storescu(f, withCert("rogue"));
        assertNotEquals(0, rogue.exit(), rogue.output());
        assertFalse(rogue.output().contains("Received Store Response"), rogue.output());
        assertFalse(spooled(uid));
        assertEquals(2, tlsRejections(2));
        assertEquals(0, harness.count("cxr.dicom.associations", "result", "accepted"));
    }

    @Test
    void wantAcceptsClientsWithoutCertificateButNotWithAnUntrustedOne() throws Exception {
        start(DicomTls.ClientAuth.WANT);
        Path f = work.resolve("want.dcm");
        String uid = newDx(f);
        Fixtures.Result noCert = storescu(f, anonymous());
        assertTrue(success(noCert), noCert.output());
        assertTrue(spooled(uid));

        Path g = work.resolve("want-rogue.dcm");
        String rogueUid = newDx(g);
        Fixtures.Result rogue = storescu(g, withCert("rogue"));
        assertNotEquals(0, rogue.exit(), rogue.output());
        assertFalse(spooled(rogueUid));
        assertEquals(1, tlsRejections(1));
    }

    @Test
    void tlsBelow12AndMisconfigurationsFailAtStart() {
        Path spoolDir = work.resolve("never");
        DicomTls.Settings tls10 = new DicomTls.Settings(pki.keyStore("server"), TestPki.PASSWORD, "PKCS12", pki.trustStore,
                TestPki.PASSWORD, "PKCS12", DicomTls.ClientAuth.WANT, List.of("TLSv1.1"), List.of(), false);
        IOException old = assertThrows(IOException.class,
                () -> new IngestHarness(spoolDir, 0, List.of(), new IngestHarness.Collector(), Duration.ofSeconds(1), tls10).close());
        assertTrue(old.getMessage().contains("TLSv1.1"), old.getMessage());

        DicomTls.Settings badPassword = DicomTls.Settings.server(pki.keyStore("server"), "wrong", null, null, DicomTls.ClientAuth.NONE);
        IOException pw = assertThrows(IOException.class,
                () -> new IngestHarness(spoolDir, 0, List.of(), new IngestHarness.Collector(), Duration.ofSeconds(1), badPassword).close());
        assertTrue(pw.getMessage().contains("server.p12"), pw.getMessage());

        DicomTls.Settings needWithoutTrust = DicomTls.Settings.server(pki.keyStore("server"), TestPki.PASSWORD, null, null,
                DicomTls.ClientAuth.NEED);
        IOException need = assertThrows(IOException.class,
                () -> new IngestHarness(spoolDir, 0, List.of(), new IngestHarness.Collector(), Duration.ofSeconds(1), needWithoutTrust).close());
        assertTrue(need.getMessage().contains("trust-store"), need.getMessage());
    }
}
