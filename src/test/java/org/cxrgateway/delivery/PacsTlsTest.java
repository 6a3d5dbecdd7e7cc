package org.cxrgateway.delivery;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.cxrgateway.dicom.DicomTls;
import org.cxrgateway.dicom.DicomTransferException;
import org.cxrgateway.dicom.StoreScu;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.testing.TestPki;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Our C-STORE SCU over DICOM TLS to dcmtk's storescp (OpenSSL, default BCP 195 profile, client certificate required). */
class PacsTlsTest {

    Path work;
    TestPki pki;
    Process storescp;
    int port;
    Path received;
    Path sr;
    String srUid;

    @BeforeEach
    void start() throws Exception {
        Files.createDirectories(Path.of("target"));
        work = Files.createTempDirectory(Path.of("target"), "pacs-tls").toAbsolutePath();
        pki = new TestPki(work.resolve("pki"));
        received = Files.createDirectories(work.resolve("received"));
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        storescp = new ProcessBuilder("storescp", "-aet", "TLSPACS", "+tls", pki.key("server").toString(),
                pki.cert("server").toString(), "+cf", pki.caPem.toString(), "-od", received.toString(), Integer.toString(port))
                .redirectErrorStream(true).redirectOutput(work.resolve("storescp.log").toFile()).start();
        long end = System.nanoTime() + 10_000_000_000L;
        while (true) {
            try (Socket probe = new Socket("127.0.0.1", port)) {
                break;
            } catch (java.io.IOException e) {
                if (System.nanoTime() > end || !storescp.isAlive()) {
                    throw new IllegalStateException("storescp did not start: " + Files.readString(work.resolve("storescp.log")));
                }
                Thread.sleep(50);
            }
        }
        ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(TestResults.study("41").build());
        ReportSet.DicomObject srObject = set.dicom().stream().filter(o -> o.kind().equals("SR")).findFirst()
                .orElseThrow();
        srUid = srObject.sopInstanceUid();
        sr = work.resolve(srUid + ".dcm");
        Files.write(sr, srObject.part10());
    }

    @AfterEach
    void stop() throws Exception {
        if (storescp != null) {
            storescp.destroy();
            if (!storescp.waitFor(5, TimeUnit.SECONDS)) {
                storescp.destroyForcibly();
            }
        }
    }

    List<Path> receivedFiles() throws Exception {
        try (Stream<Path> s = Files.list(received)) {
            return s.filter(Files::isRegularFile).toList();
        }
    }

    DicomTls.Settings client(boolean withKey, Path trust, boolean verifyHostname) {
        return new DicomTls.Settings(withKey ? pki.keyStore("client") : null, TestPki.PASSWORD, "PKCS12", trust,
                TestPki.PASSWORD, "PKCS12", DicomTls.ClientAuth.NONE, List.of("TLSv1.3", "TLSv1.2"), List.of(), verifyHostname);
    }

    @Test
    void srArrivesOverMutualTls() throws Exception {
        Map<Path, Boolean> out = StoreScu.store("127.0.0.1", port, "TLSPACS", "CXRGATEWAY", List.of(sr),
                client(true, pki.trustStore, true));
        assertEquals(Map.of(sr, true), out);
        List<Path> files = receivedFiles();
        assertEquals(1, files.size(), files.toString());
        Tools.Result dump = Tools.run("dcmdump", "+P", "0008,0018", "+P", "0008,0016", files.get(0).toString());
        assertTrue(dump.out().contains(srUid), dump.out());
        Tools.Result dsr = Tools.run("dsrdump", files.get(0).toString());
        assertEquals(0, dsr.exit(), dsr.out());

        // the host name form, checked against the certificate's DNS name
        Map<Path, Boolean> again = StoreScu.store("localhost", port, "TLSPACS", "CXRGATEWAY", List.of(sr),
                client(true, pki.trustStore, true));
        assertEquals(Map.of(sr, true), again);
    }

    @Test
    void refusedWithoutClientCertificateOrWithUntrustedServer() throws Exception {
        // storescp requires a client certificate by default
        DicomTransferException noCert = assertThrows(DicomTransferException.class, () -> StoreScu.store("127.0.0.1", port,
                "TLSPACS", "CXRGATEWAY", List.of(sr), client(false, pki.trustStore, true)));
        // JDK default CAs: our test CA is not among them
        DicomTransferException untrusted = assertThrows(DicomTransferException.class, () -> StoreScu.store("127.0.0.1", port,
                "TLSPACS", "CXRGATEWAY", List.of(sr), client(true, null, true)));
        assertTrue(untrusted.getMessage().contains("TLS connection"), untrusted.getMessage());
        // plain DICOM to the TLS port
        assertThrows(DicomTransferException.class, () -> StoreScu.store("127.0.0.1", port, "TLSPACS", "CXRGATEWAY",
                List.of(sr), null));
        assertEquals(List.of(), receivedFiles(), noCert.getMessage());
        // storescp is still serving
        assertEquals(Map.of(sr, true), StoreScu.store("127.0.0.1", port, "TLSPACS", "CXRGATEWAY", List.of(sr),
                client(true, pki.trustStore, true)));
    }
}
