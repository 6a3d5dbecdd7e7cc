package org.cxrgateway.delivery;

import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.arc.DefaultBean;
import jakarta.enterprise.context.ApplicationScoped;
import jakarta.enterprise.inject.Disposes;
import jakarta.enterprise.inject.Instance;
import jakarta.enterprise.inject.Produces;
import org.cxrgateway.GatewayConfig;
import org.cxrgateway.dicom.DicomTls;
import org.cxrgateway.queue.DeadLetters;
import org.cxrgateway.queue.KafkaConfig;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportConfig;
import org.cxrgateway.report.ReportSettings;
import org.eclipse.microprofile.config.inject.ConfigProperty;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.nio.file.Path;
import javax.net.ssl.SSLContext;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Wires the delivery service from configuration. */
@ApplicationScoped
public class DeliveryBeans {

    private static final Logger LOG = Logger.getLogger(DeliveryBeans.class);

    @Produces
    @ApplicationScoped
    @DefaultBean
    DeliveryService deliveryService(DeliveryConfig cfg, ReportConfig report, GatewayConfig gateway, KafkaConfig kafka,
                                    Instance<DeadLetters> deadLetterTopic, MeterRegistry metrics,
                                    @ConfigProperty(name = "cxr.listener.ae-title", defaultValue = "CXRGATEWAY") String listenerAe) {
        Path state = cfg.stateDir().orElse(gateway.dataDir().resolve("delivery"));
        List<Destination> destinations = new ArrayList<>();
        for (Map.Entry<String, DeliveryConfig.Pacs> e : cfg.pacs().entrySet()) {
            DeliveryConfig.Pacs p = e.getValue();
            DeliveryConfig.PacsTls t = p.tls();
            DicomTls.Settings tls = !t.enabled() ? null : new DicomTls.Settings(t.keyStore().orElse(null),
                    t.keyStorePassword().orElse(null), t.keyStoreType(), t.trustStore().orElse(null),
                    t.trustStorePassword().orElse(null), t.trustStoreType(), DicomTls.ClientAuth.NONE, t.protocols(),
                    t.cipherSuites().orElse(List.of()), t.verifyHostname());
            destinations.add(new PacsDestination(e.getKey(), p.host(), p.port(), p.calledAe(),
                    p.callingAe().orElse(listenerAe), state.resolve("spool"), tls));
        }
        for (Map.Entry<String, DeliveryConfig.DicomWeb> e : cfg.dicomweb().entrySet()) {
            DeliveryConfig.DicomWeb w = e.getValue();
            SSLContext ssl = null;
            if (w.trustStore().isPresent() || w.keyStore().isPresent()) {
                try {
                    ssl = DicomTls.context(new DicomTls.Settings(w.keyStore().orElse(null), w.keyStorePassword().orElse(null),
                            w.keyStoreType(), w.trustStore().orElse(null), w.trustStorePassword().orElse(null),
                            w.trustStoreType(), DicomTls.ClientAuth.NONE, null, null, true));
                } catch (IOException ex) {
                    throw new IllegalStateException("cxr.delivery.dicomweb." + e.getKey() + ": " + ex.getMessage(), ex);
                }
            }
            destinations.add(new DicomWebDestination(e.getKey(), w.url(), w.bearerToken(), w.username(), w.password(),
                    w.timeout(), ssl, metrics));
        }
        for (Map.Entry<String, DeliveryConfig.Fhir> e : new java.util.TreeMap<>(cfg.fhir()).entrySet()) {
            DeliveryConfig.Fhir f = e.getValue();
            String name = e.getKey().equals(FhirDestination.UNNAMED) ? "fhir" : "fhir-" + e.getKey();
            f.baseUrl().filter(u -> !u.isBlank()).ifPresent(url -> destinations.add(new FhirDestination(name, url,
                    f.bearerToken(), f.username(), f.password(), f.timeout(), f.writeMode(), f.maxTransactionEntries(), metrics)));
        }
        if (destinations.isEmpty()) {
            Path outbox = cfg.outboxDir().orElse(gateway.dataDir().resolve("outbox"));
            LOG.infof("no PACS, DICOMweb or FHIR destination configured: reports go to the outbox %s", outbox.toAbsolutePath());
            destinations.add(new OutboxDestination(outbox));
        }
        DeadLetterStore store = new FileDeadLetterStore(state.resolve("dead-letters"));
        if (deadLetterTopic.isResolvable()) {
            store = new KafkaMirroredDeadLetterStore(store, deadLetterTopic.get(), kafka.topics().results());
        }
        return new DeliveryService(new ReportBuilder(ReportSettings.from(report)), destinations,
                new DeliveryLedger(state.resolve("ledger")), store,
                new RetryPolicy(Math.max(1, cfg.retry().maxAttempts()), cfg.retry().initialBackoff(), cfg.retry().maxBackoff()),
                new PendingStore(state.resolve("pending")), metrics);
    }

    void close(@Disposes DeliveryService service) {
        service.close();
    }
}
