package org.cxrgateway.delivery;

import jakarta.enterprise.context.ApplicationScoped;
import org.cxrgateway.GatewayConfig;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.Readiness;

/**
 * DOWN on a delivery process until its report builders are warm (HAPI's FhirContext has scanned the R4 model
 * classes the bundle uses, fonts and PixelMed's dictionaries are loaded: seconds, see ReportWarmUp) and results
 * are being read, so that a process that reports ready does not make its first study pay for them.
 */
@Readiness
@ApplicationScoped
public class DeliveryReadiness implements HealthCheck {

    private final DeliveryConsumer consumer;
    private final GatewayConfig gateway;

    DeliveryReadiness(DeliveryConsumer consumer, GatewayConfig gateway) {
        this.consumer = consumer;
        this.gateway = gateway;
    }

    @Override
    public HealthCheckResponse call() {
        var b = HealthCheckResponse.named("delivery");
        if (!gateway.runs(GatewayConfig.Role.DELIVERY)) {
            return b.up().withData("state", "delivery role not run here").build();
        }
        String state = consumer.state();
        return b.status("consuming".equals(state)).withData("state", state).build();
    }
}
