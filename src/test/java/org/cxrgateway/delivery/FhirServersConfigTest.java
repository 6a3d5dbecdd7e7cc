package org.cxrgateway.delivery;

import io.smallrye.config.PropertiesConfigSource;
import io.smallrye.config.SmallRyeConfig;
import io.smallrye.config.SmallRyeConfigBuilder;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * cxr.delivery.fhir.* keeps naming the one FHIR server it always named (the unnamed key), and
 * cxr.delivery.fhir.NAME.* adds further servers, each with its own write mode and defaults.
 */
class FhirServersConfigTest {

    static DeliveryConfig load(Map<String, String> props) {
        return load(new PropertiesConfigSource(props, "test", 500));
    }

    static DeliveryConfig load(org.eclipse.microprofile.config.spi.ConfigSource source) {
        SmallRyeConfig config = new SmallRyeConfigBuilder().withMapping(DeliveryConfig.class)
                // Quarkus's own converter, as the application has it: "30s"
                .withConverter(java.time.Duration.class, 100, new io.quarkus.runtime.configuration.DurationConverter())
                .withSources(source).build();
        return config.getConfigMapping(DeliveryConfig.class);
    }

    @Test
    void theUnnamedServerAndNamedOnesEachWithTheirOwnSettings() {
        DeliveryConfig cfg = load(Map.of(
                "cxr.delivery.fhir.base-url", "http://127.0.0.1:1/fhir",
                "cxr.delivery.fhir.timeout", "5s",
                "cxr.delivery.fhir.registry.base-url", "http://127.0.0.1:2/fhir",
                "cxr.delivery.fhir.registry.write-mode", "ordered"));
        assertEquals(2, cfg.fhir().size(), cfg.fhir().keySet().toString());
        DeliveryConfig.Fhir main = cfg.fhir().get(FhirDestination.UNNAMED);
        assertEquals(Optional.of("http://127.0.0.1:1/fhir"), main.baseUrl());
        assertEquals(FhirWriteMode.TRANSACTION, main.writeMode());
        assertEquals(java.time.Duration.ofSeconds(5), main.timeout());
        DeliveryConfig.Fhir registry = cfg.fhir().get("registry");
        assertEquals(Optional.of("http://127.0.0.1:2/fhir"), registry.baseUrl());
        assertEquals(FhirWriteMode.ORDERED, registry.writeMode());
        assertEquals(8, registry.maxTransactionEntries(), "defaults apply to named servers too");
        assertEquals(java.time.Duration.ofSeconds(30), registry.timeout());
    }

    /** deploy/ sets CXR_DELIVERY_FHIR_BASE_URL and CXR_DELIVERY_FHIR_BEARER_TOKEN: they still name the unnamed server. */
    @Test
    void environmentVariablesNameTheUnnamedAndNamedServers() {
        DeliveryConfig cfg = load(new io.smallrye.config.EnvConfigSource(Map.of(
                "CXR_DELIVERY_FHIR_BASE_URL", "http://127.0.0.1:1/fhir",
                "CXR_DELIVERY_FHIR_BEARER_TOKEN", "t",
                "CXR_DELIVERY_FHIR_MAX_TRANSACTION_ENTRIES", "5",
                "CXR_DELIVERY_FHIR_REGISTRY_BASE_URL", "http://127.0.0.1:2/fhir",
                "CXR_DELIVERY_FHIR_REGISTRY_WRITE_MODE", "auto"), 300));
        assertEquals(java.util.Set.of(FhirDestination.UNNAMED, "registry"), cfg.fhir().keySet());
        assertEquals(Optional.of("http://127.0.0.1:1/fhir"), cfg.fhir().get(FhirDestination.UNNAMED).baseUrl());
        assertEquals(Optional.of("t"), cfg.fhir().get(FhirDestination.UNNAMED).bearerToken());
        assertEquals(5, cfg.fhir().get(FhirDestination.UNNAMED).maxTransactionEntries());
        assertEquals(FhirWriteMode.AUTO, cfg.fhir().get("registry").writeMode());
    }

    @Test
    void noFhirKeysMeansNoFhirServer() {
        DeliveryConfig cfg = load(Map.of());
        assertTrue(cfg.fhir().values().stream().allMatch(f -> f.baseUrl().isEmpty()), cfg.fhir().toString());
    }
}
