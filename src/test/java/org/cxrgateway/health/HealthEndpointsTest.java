package org.cxrgateway.health;

import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import org.cxrgateway.queue.EmbeddedKafkaTestResource;
import org.junit.jupiter.api.Test;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.hasItem;
import static org.hamcrest.Matchers.is;

@QuarkusTest
@WithTestResource(EmbeddedKafkaTestResource.class)
class HealthEndpointsTest {

    @Test
    void liveAndReadyWithKafkaReachable() {
        given().when().get("/q/health/live").then().statusCode(200).body("status", is("UP"));
        given().when().get("/q/health/ready").then()
                .body("checks.name", hasItem("kafka"))
                .body("checks.find { it.name == 'kafka' }.status", is("UP"));
    }

    @Test
    void prometheusMetricsAreExposed() {
        given().when().get("/q/metrics").then().statusCode(200);
    }
}
