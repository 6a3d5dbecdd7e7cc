package org.cxrgateway.delivery;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.cxrgateway.dicom.DicomTls;
import org.cxrgateway.dicom.DicomTransferException;
import org.cxrgateway.dicom.DimseStatus;
import org.cxrgateway.dicom.StoreScu;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.testing.StoreScpPeer;
import org.cxrgateway.testing.TestPki;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** Our C-STORE SCU over DICOM TLS to dcmtk's storescp (OpenSSL, default BCP 195 profile, client certificate required). */
class PacsTlsTest {

    Path work;
    TestPki pki;
    StoreScpPeer storescp;
    int port;
    Path sr;
    String srUid;

    @BeforeEach
    void start() throws Exception {
        Files.createDirectories(Path.of("target"));
        work = Files.createTempDirectory(Path.of("target"), "pacs-tls").toAbsolutePath();
        pki = new TestPki(work.resolve("pki"));
        storescp = new StoreScpPeer(work, "TLSPACS", "+tls", pki.key("server").toString(), pki.cert("server").toString(),
                "+cf", pki.caPem.toString());
        port = storescp.port;
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
            storescp.close();
        }
    }

    List<Path> receivedFiles() throws Exception {
        return storescp.receivedFiles();
    }

    DicomTls.Settings client(boolean withKey, Path trust, boolean verifyHostname) {
        return new DicomTls.Settings(withKey ? pki.keyStore("client") : null, TestPki.PASSWORD, "PKCS12", trust,
                TestPki.PASSWORD, "PKCS12", DicomTls.ClientAuth.NONE, List.of("TLSv1.3", "TLSv1.2"), List.of(), verifyHostname);
    }

    @Test
    void srArrivesOverMutualTls() throws Exception {
        Map<Path, DimseStatus> out = StoreScu.store("127.0.0.1", port, "TLSPACS", "CXRGATEWAY", List.of(sr),
                client(true, pki.trustStore, true));
        assertEquals(Map.of(sr, DimseStatus.of(DimseStatus.SUCCESS)), out);
        List<Path> files = receivedFiles();
        assertEquals(1, files.size(), files.toString());
        Tools.Result dump = Tools.run("dcmdump", "+P", "0008,0018", "+P", "0008,0016", files.get(0).toString());
        assertTrue(dump.out().contains(srUid), dump.out());
        Tools.Result dsr = Tools.run("dsrdump", files.get(0).toString());
        assertEquals(0, dsr.exit(), dsr.out());

        // the host name form, checked against the certificate's DNS name
        Map<Path, DimseStatus> again = StoreScu.store("localhost", port, "TLSPACS", "CXRGATEWAY", List.of(sr),
                client(true, pki.trustStore, true));
        assertEquals(Map.of(sr, DimseStatus.of(DimseStatus.SUCCESS)), again);
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
        assertEquals(Map.of(sr, DimseStatus.of(DimseStatus.SUCCESS)), StoreScu.store("127.0.0.1", port, "TLSPACS", "CXRGATEWAY", List.of(sr),
                client(true, pki.trustStore, true)));
    }
}
