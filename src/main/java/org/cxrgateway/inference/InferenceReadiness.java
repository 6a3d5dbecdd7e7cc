package org.cxrgateway.inference;

import jakarta.enterprise.context.ApplicationScoped;
import org.cxrgateway.GatewayConfig;
import org.eclipse.microprofile.health.HealthCheck;
import org.eclipse.microprofile.health.HealthCheckResponse;
import org.eclipse.microprofile.health.HealthCheckResponseBuilder;
import org.eclipse.microprofile.health.Readiness;

/** DOWN on a worker until every model package is loaded and warmed up (and stays DOWN if one fails). */
@Readiness
@ApplicationScoped
public class InferenceReadiness implements HealthCheck {

    private final ModelRegistry registry;
    private final GatewayConfig gateway;

    InferenceReadiness(ModelRegistry registry, GatewayConfig gateway) {
        this.registry = registry;
        this.gateway = gateway;
    }

    @Override
    public HealthCheckResponse call() {
        HealthCheckResponseBuilder b = HealthCheckResponse.named("inference-models");
        if (!gateway.runs(GatewayConfig.Role.WORKER)) {
            return b.up().withData("state", "worker role not run here").build();
        }
        boolean up = registry.ready().isDone() && !registry.ready().isCompletedExceptionally();
        b.status(up).withData("state", registry.state());
        for (OrtModel m : registry.models()) {
            b.withData(m.pkg().manifest().id(), m.pkg().manifest().version() + " on " + m.engine());
        }
        return b.build();
    }
}
