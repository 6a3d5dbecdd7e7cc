package org.cxrgateway.e2e;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import org.cxrgateway.queue.EmbeddedKafkaBroker;
import org.cxrgateway.testing.HttpTokens;
import org.cxrgateway.testing.OrthancPeer;

/**
 * The DICOMweb peers of one whole gateway: a Kafka broker and Debian's Orthanc with its DICOMweb plugin, which is
 * both the archive our results go to by STOW-RS (cxr.delivery.dicomweb.orthanc) and a STOW-RS client that pushes
 * studies to us (its server "cxr": our /dicomweb/ with the ingest test token). The gateway's HTTP port is chosen
 * here, so that Orthanc can be told it before either starts. No PACS and no FHIR destination: what Orthanc
 * receives came by STOW-RS.
 */
public class DicomWebPeers implements QuarkusTestResourceLifecycleManager {

    static OrthancPeer orthanc;
    static Path work;
    static int httpPort;
    private EmbeddedKafkaBroker kafka;

    @Override
    public Map<String, String> start() {
        try {
            work = Files.createDirectories(Path.of("target", "e2e-dicomweb").toAbsolutePath());
            kafka = new EmbeddedKafkaBroker(Files.createTempDirectory(work, "kafka"), 0, 0, 16 * 1024 * 1024).start();
            httpPort = OrthancPeer.freePort();
            orthanc = new OrthancPeer(work, "CXRGATEWAY", OrthancPeer.freePort())
                    .withDicomWeb("cxr", "http://127.0.0.1:" + httpPort + "/dicomweb/", HttpTokens.INGEST);
            orthanc.start();
            Map<String, String> config = new HashMap<>();
            config.put("quarkus.http.test-port", Integer.toString(httpPort));
            config.put("cxr.kafka.bootstrap-servers", kafka.bootstrapServers());
            config.put("cxr.data-dir", Files.createTempDirectory(work, "data").toString());
            config.put("cxr.delivery.dicomweb.orthanc.url", "http://127.0.0.1:" + orthanc.httpPort + "/dicom-web");
            config.put("cxr.delivery.dicomweb.orthanc.timeout", "60s");
            config.put("cxr.assembly.quiet-period", "1s");
            return config;
        } catch (Exception e) {
            stop();
            throw new IllegalStateException("cannot start the DICOMweb peers", e);
        }
    }

    @Override
    public void stop() {
        try {
            if (orthanc != null) {
                orthanc.close();
            }
        } catch (Exception ignored) {
            // the test outcome is already decided
        }
        if (kafka != null) {
            kafka.close();
        }
    }
}
