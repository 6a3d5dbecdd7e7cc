package org.cxrgateway.delivery;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import org.cxrgateway.testing.FhirTestServer;
import org.cxrgateway.testing.OrthancPeer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

/**
 * Real delivery peers for a Quarkus test: Debian's Orthanc and the in-process HAPI FHIR server, both on
 * loopback and ephemeral ports, plus a fresh delivery state folder (so no ledger of an earlier run hides a
 * delivery). The PACS retry budget is a few seconds: long enough to watch FHIR deliver new studies while the
 * PACS is still being retried, short enough for a test.
 */
public class DeliveryPeersResource implements QuarkusTestResourceLifecycleManager {

    private OrthancPeer orthanc;
    private FhirTestServer fhir;

    @Override
    public Map<String, String> start() {
        try {
            Files.createDirectories(Path.of("target"));
            Path dir = Files.createTempDirectory(Path.of("target"), "delivery-it").toAbsolutePath();
            orthanc = new OrthancPeer(dir, "CXRGATEWAY", 11112);
            orthanc.start();
            fhir = new FhirTestServer();
            return Map.of(
                    "cxr.delivery.pacs.orthanc.host", "127.0.0.1",
                    "cxr.delivery.pacs.orthanc.port", Integer.toString(orthanc.dicomPort),
                    "cxr.delivery.pacs.orthanc.called-ae", "ORTHANC",
                    "cxr.delivery.fhir.base-url", fhir.baseUrl(),
                    "cxr.delivery.state-dir", dir.resolve("state").toString(),
                    "cxr.delivery.retry.max-attempts", "4",
                    "cxr.delivery.retry.initial-backoff", "1s",
                    "cxr.delivery.retry.max-backoff", "4s");
        } catch (Exception e) {
            stop();
            throw new IllegalStateException("cannot start the delivery peers", e);
        }
    }

    @Override
    public void inject(TestInjector injector) {
        injector.injectIntoFields(orthanc, new TestInjector.MatchesType(OrthancPeer.class));
        injector.injectIntoFields(fhir, new TestInjector.MatchesType(FhirTestServer.class));
    }

    @Override
    public void stop() {
        try {
            if (orthanc != null) {
                orthanc.close();
            }
            if (fhir != null) {
                fhir.close();
            }
        } catch (Exception e) {
            throw new IllegalStateException("cannot stop the delivery peers", e);
        }
    }
}
