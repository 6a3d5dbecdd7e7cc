package org.cxrgateway.health;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.containsString;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.QuarkusTestProfile;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.cxrgateway.dicom.DicomListener;
import org.junit.jupiter.api.Test;

/** The packaged wiring: role "listener" starts the listener; readiness and Prometheus metrics show it. */
@QuarkusTest
@TestProfile(IngestReadinessTest.ListenerRole.class)
public class IngestReadinessTest {

    public static class ListenerRole implements QuarkusTestProfile {
        @Override
        public Map<String, String> getConfigOverrides() {
            return Map.of("cxr.roles", "listener",
                    "cxr.listener.port", "0",
                    "cxr.listener.bind-address", "127.0.0.1",
                    "cxr.data-dir", "target/test-data/quarkus-ingest");
        }
    }

    @Inject
    DicomListener listener;

    @Test
    void readyWhenBoundAndMetricsCountAssociations() throws Exception {
        given().when().get("/q/health/ready").then().statusCode(200)
                .body(containsString("\"listenerBound\": true"))
                .body(containsString("\"spoolWritableAboveWatermark\": true"));
        Process echo = new ProcessBuilder("echoscu", "-aec", listener.aeTitle(), "127.0.0.1",
                Integer.toString(listener.port())).redirectErrorStream(true).start();
        echo.getInputStream().readAllBytes();
        echo.waitFor(30, TimeUnit.SECONDS);
        assertEquals(0, echo.exitValue());
        Process wrong = new ProcessBuilder("echoscu", "-aec", "NOTUS", "127.0.0.1",
                Integer.toString(listener.port())).redirectErrorStream(true).start();
        wrong.getInputStream().readAllBytes();
        wrong.waitFor(30, TimeUnit.SECONDS);
        given().when().get("/q/metrics").then().statusCode(200)
                .body(containsString("cxr_dicom_associations_total{reason=\"none\",result=\"accepted\"} 1.0"))
                .body(containsString("cxr_dicom_associations_total{reason=\"CALLED_AE_NOT_RECOGNIZED\",result=\"rejected\"} 1.0"))
                .body(containsString("cxr_ingest_spool_instances"));
        listener.stop();
        given().when().get("/q/health/ready").then().statusCode(503).body(containsString("\"listenerBound\": false"));
    }
}
