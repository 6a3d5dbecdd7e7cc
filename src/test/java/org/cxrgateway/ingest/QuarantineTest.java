package org.cxrgateway.ingest;

import static io.restassured.RestAssured.given;
import static org.cxrgateway.testing.HttpTokens.asAdmin;
import static org.hamcrest.Matchers.containsString;
import static org.hamcrest.Matchers.is;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.micrometer.core.instrument.MeterRegistry;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import jakarta.inject.Inject;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.config.ConfigResource;
import org.cxrgateway.dicom.DicomListener;
import org.cxrgateway.health.IngestReadinessTest;
import org.cxrgateway.queue.EmbeddedKafkaTestResource;
import org.cxrgateway.queue.KafkaCluster;
import org.junit.jupiter.api.Test;

/**
 * A study the broker cannot take (the jobs topic's max.message.bytes set to 1 KiB on the real embedded
 * broker) is quarantined at the first attempt, seen in the metric, the readiness data and /admin/quarantine,
 * is not decoded again while it waits, and is published once the topic is fixed and the study retried.
 */
@QuarkusTest
@WithTestResource(EmbeddedKafkaTestResource.class)
@TestProfile(QuarantineTest.ListenerRole.class)
class QuarantineTest {

    static final Duration RETRY_DELAY = Duration.ofMillis(200);

    /** The listener role as in {@link IngestReadinessTest}, with short assembly timers. */
    public static class ListenerRole extends IngestReadinessTest.ListenerRole {
        @Override
        public Map<String, String> getConfigOverrides() {
            Map<String, String> c = new HashMap<>(super.getConfigOverrides());
            c.put("cxr.assembly.quiet-period", "200ms");
            c.put("cxr.assembly.publish-retry-delay", RETRY_DELAY.toMillis() + "ms");
            c.put("cxr.assembly.max-publish-attempts", "3");
            return c;
        }
    }

    @Inject
    DicomListener listener;

    @Inject
    KafkaCluster cluster;

    @Inject
    MeterRegistry registry;

    @Test
    void unpublishableStudyIsQuarantinedNotDecodedAgainAndPublishedAfterRetry() throws Exception {
        String jobs = cluster.config().topics().jobs();
        setTopicLimit(jobs, 1024);
        Path fixtures = Fixtures.newDir("quarantine");
        String study = Fixtures.cases(fixtures);

        Fixtures.Result sent = Fixtures.run(fixtures, "storescu", "-v", "-aec", listener.aeTitle(), "127.0.0.1",
                Integer.toString(listener.port()), "mono2_12bit_rescale_window.dcm", "mono1_12bit_window.dcm");
        assertEquals(2, ListenerIngestTest.successes(sent), sent.output());
        long sentAt = System.nanoTime();

        List<Map<String, Object>> quarantined = awaitQuarantined(1);
        long toQuarantineMs = (System.nanoTime() - sentAt) / 1_000_000;
        assertEquals(1, quarantined.size(), quarantined.toString());
        Map<String, Object> q = quarantined.get(0);
        assertEquals(study, q.get("studyInstanceUid"));
        assertEquals(1, q.get("attempts"), "too large: final at the first attempt");
        assertTrue(q.get("reason").toString().startsWith("RecordTooLargeException"), q.toString());
        assertTrue(((Number) q.get("sinceEpochMs")).longValue() > 0);
        double decoded = count("cxr.ingest.images.decoded");
        assertEquals(2, decoded, "two eligible images, decoded once");

        // while it waits: many retry delays pass, nothing is read or decoded again
        double failures = count("cxr.ingest.publish.failures");
        Thread.sleep(RETRY_DELAY.toMillis() * 10);
        assertEquals(decoded, count("cxr.ingest.images.decoded"), "no decode loop while quarantined");
        assertEquals(failures, count("cxr.ingest.publish.failures"), "no publish attempt while quarantined");

        given().when().get("/q/metrics").then().statusCode(200)
                .body(containsString("cxr_ingest_studies_quarantined 1.0"))
                .body(containsString("cxr_ingest_images_decoded_total 2.0"));
        given().when().get("/q/health/ready").then().statusCode(200)
                .body("checks.find { it.name == 'ingest' }.status", is("UP"))
                .body("checks.find { it.name == 'ingest' }.data.studiesQuarantined", is(1));
        asAdmin().when().post("/admin/quarantine/retry?study=1.2.3.4").then().statusCode(404)
                .body("error", containsString("not quarantined"));

        // the fix, then the retry: published once, quarantine empty
        setTopicLimit(jobs, cluster.config().maxMessageBytes());
        asAdmin().when().post("/admin/quarantine/retry").then().statusCode(200)
                .body("retried", is(List.of(study)));
        try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(cluster.consumerProperties("quarantine-test"))) {
            consumer.subscribe(List.of(jobs));
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            int found = 0;
            while (found < 2 && System.nanoTime() < end) {
                for (ConsumerRecord<String, byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    if (study.equals(r.key())) {
                        found++;
                    }
                }
            }
            // one message per image (message StudyParts)
            assertEquals(2, found, "the job's two parts are in the topic after the retry");
        }
        assertEquals(List.of(), awaitQuarantined(0));
        assertEquals(4, count("cxr.ingest.images.decoded"), "decoded once more, for the retry");
        given().when().get("/q/metrics").then().body(containsString("cxr_ingest_studies_quarantined 0.0"));
        System.out.printf("quarantine figures: attempts=%s to_quarantine_ms=%d decoded_at_quarantine=%.0f "
                + "decoded_after_%dms_waiting=%.0f decoded_after_retry=%.0f%n", q.get("attempts"), toQuarantineMs,
                decoded, RETRY_DELAY.toMillis() * 10, decoded, count("cxr.ingest.images.decoded"));
    }

    private List<Map<String, Object>> awaitQuarantined(int n) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        List<Map<String, Object>> list;
        while ((list = asAdmin().when().get("/admin/quarantine").then().statusCode(200).extract().jsonPath().getList("$"))
                .size() != n && System.nanoTime() < end) {
            Thread.sleep(50);
        }
        return list;
    }

    private double count(String name) {
        var c = registry.find(name).counter();
        return c == null ? 0 : c.count();
    }

    /** Sets the topic's max.message.bytes and waits until the broker serves it. */
    private void setTopicLimit(String topic, int bytes) throws Exception {
        ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        cluster.admin().incrementalAlterConfigs(Map.of(r, List.of(new AlterConfigOp(
                new ConfigEntry("max.message.bytes", Integer.toString(bytes)), AlterConfigOp.OpType.SET))))
                .all().get(30, TimeUnit.SECONDS);
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (System.nanoTime() < end) {
            ConfigEntry e = cluster.admin().describeConfigs(List.of(r)).all().get(30, TimeUnit.SECONDS)
                    .get(r).get("max.message.bytes");
            if (e != null && e.value().equals(Integer.toString(bytes))) {
                return;
            }
            Thread.sleep(50);
        }
        throw new AssertionError("broker did not apply max.message.bytes=" + bytes + " to " + topic);
    }
}
