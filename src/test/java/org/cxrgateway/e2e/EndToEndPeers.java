package org.cxrgateway.e2e;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;
import org.cxrgateway.queue.EmbeddedKafkaBroker;
import org.cxrgateway.testing.FhirTestServer;
import org.cxrgateway.testing.MedplumPeer;
import org.cxrgateway.testing.OrthancPeer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Every real peer of the product around one gateway: a Kafka broker, Debian's Orthanc as the
 * hospital PACS (auto-routing CR and DX to the gateway, receiving the results back), and two FHIR
 * servers the gateway writes every report to: HAPI FHIR (destination fhir, transaction mode) and
 * Medplum's router (destination fhir-medplum, ordered mode: it caps conditional transactions at 8
 * entries). Static, so that the test can reach the peers the gateway was configured with.
 */
public class EndToEndPeers implements QuarkusTestResourceLifecycleManager {

    static final String OUR_AE = "CXRGATEWAY";
    static OrthancPeer orthanc;
    static FhirTestServer fhir;
    static MedplumPeer medplum;
    /** The Medplum destination's name: cxr.delivery.fhir.medplum.* */
    static final String MEDPLUM_DESTINATION = "fhir-medplum";
    static Path work;
    private EmbeddedKafkaBroker kafka;

    /** Orthanc forwards what modalities send it, never what the gateway sends back (no loop). */
    static final String AUTO_ROUTE = """
            function OnStoredInstance(instanceId, tags, metadata, origin)
              local modality = tags['Modality']
              if origin['RequestOrigin'] == 'DicomProtocol' and origin['RemoteAet'] ~= '%s'
                 and (modality == 'CR' or modality == 'DX') then
                SendToModality(instanceId, 'cxr')
              end
            end
            """.formatted(OUR_AE);

    @Override
    public Map<String, String> start() {
        try {
            work = Files.createDirectories(Path.of("target", "e2e").toAbsolutePath());
            kafka = new EmbeddedKafkaBroker(Files.createTempDirectory(work, "kafka"), 0, 0, 16 * 1024 * 1024).start();
            int listenerPort = OrthancPeer.freePort();
            orthanc = new OrthancPeer(work, OUR_AE, listenerPort).withLuaScript(AUTO_ROUTE);
            orthanc.start();
            fhir = new FhirTestServer();
            medplum = new MedplumPeer();
            Map<String, String> config = new HashMap<>();
            config.put("cxr.kafka.bootstrap-servers", kafka.bootstrapServers());
            config.put("cxr.listener.port", Integer.toString(listenerPort));
            config.put("cxr.data-dir", Files.createTempDirectory(work, "data").toString());
            config.put("cxr.delivery.pacs.orthanc.host", "127.0.0.1");
            config.put("cxr.delivery.pacs.orthanc.port", Integer.toString(orthanc.dicomPort));
            config.put("cxr.delivery.pacs.orthanc.called-ae", "ORTHANC");
            config.put("cxr.delivery.fhir.base-url", fhir.baseUrl());
            config.put("cxr.delivery.fhir.medplum.base-url", medplum.baseUrl());
            config.put("cxr.delivery.fhir.medplum.write-mode", "ordered");
            config.put("cxr.assembly.quiet-period", "1s");
            return config;
        } catch (Exception e) {
            stop();
            throw new IllegalStateException("cannot start the end-to-end peers", e);
        }
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
            if (medplum != null) {
                medplum.close();
            }
        } catch (Exception ignored) {
            // the test outcome is already decided
        }
        if (kafka != null) {
            kafka.close();
        }
    }
}
