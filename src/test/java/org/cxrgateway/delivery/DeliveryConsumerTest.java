package org.cxrgateway.delivery;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.cxrgateway.queue.DeadLetters;
import org.cxrgateway.queue.EmbeddedKafkaTestResource;
import org.cxrgateway.queue.JobPublisher;
import org.cxrgateway.queue.KafkaCluster;
import org.cxrgateway.report.ReportBuilder;
import org.cxrgateway.report.ReportSet;
import org.cxrgateway.report.ReportSettings;
import org.cxrgateway.report.TestResults;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.testing.FhirTestServer;
import org.cxrgateway.testing.OrthancPeer;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import static io.restassured.RestAssured.given;
import static org.cxrgateway.testing.HttpTokens.asAdmin;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The delivery role against a real (embedded) Kafka broker, a real Orthanc and a HAPI FHIR server: results
 * published to the topic reach both destinations and their offsets are committed; a down PACS neither blocks
 * FHIR nor new studies, and its dead letters are replayed through the REST endpoint exactly once; a poison
 * result goes to the dead-letter topic with its reason while the partition moves on.
 */
@QuarkusTest
@WithTestResource(EmbeddedKafkaTestResource.class)
@WithTestResource(DeliveryPeersResource.class)
class DeliveryConsumerTest {

    static final ObjectMapper JSON = new ObjectMapper();
    static final String PACS = "pacs-orthanc";

    OrthancPeer orthanc;
    FhirTestServer fhir;

    @Inject
    JobPublisher publisher;
    @Inject
    KafkaCluster cluster;
    @Inject
    DeliveryService service;
    @Inject
    DeliveryConfig config;

    static TestResults study() {
        // unique per run: the broker and peers are fresh, but a study UID must never collide across tests
        return TestResults.study(Long.toString(UUID.randomUUID().getMostSignificantBits() & Long.MAX_VALUE));
    }

    static List<String> expectedSops(StudyResult r) throws Exception {
        ReportSet set = new ReportBuilder(ReportSettings.defaults()).build(r);
        return set.dicom().stream().map(ReportSet.DicomObject::sopInstanceUid).toList();
    }

    /** SOP Instance UID -> how many instances Orthanc holds with it. */
    Map<String, Long> orthancSops(String studyUid) throws Exception {
        JsonNode found = JSON.readTree(orthanc.post("/tools/find", """
                {"Level":"Instance","Expand":true,"Query":{"StudyInstanceUID":"%s"}}""".formatted(studyUid)));
        List<String> sops = new ArrayList<>();
        found.forEach(i -> sops.add(i.get("MainDicomTags").get("SOPInstanceUID").asText()));
        return sops.stream().collect(Collectors.groupingBy(s -> s, Collectors.counting()));
    }

    boolean fhirHas(String studyUid) {
        return fhir.stored.keySet().stream().anyMatch(k -> k.startsWith("ImagingStudy|") && k.endsWith(":" + studyUid));
    }

    static void await(String what, Duration limit, Callable<Boolean> condition) throws Exception {
        long deadline = System.nanoTime() + limit.toNanos();
        while (!condition.call()) {
            assertTrue(System.nanoTime() < deadline, "timed out waiting for " + what);
            Thread.sleep(50);
        }
    }

    void awaitInOrthanc(StudyResult r) throws Exception {
        List<String> want = expectedSops(r);
        String study = r.getStudy().getStudyInstanceUid();
        await("objects of " + study + " in Orthanc", Duration.ofSeconds(60), () -> {
            try {
                return orthancSops(study).keySet().containsAll(want);
            } catch (java.io.IOException e) {
                // right after an Orthanc restart a pooled HTTP connection to the old process may still be tried
                return false;
            }
        });
        Map<String, Long> held = orthancSops(study);
        for (String sop : want) {
            assertEquals(1L, held.get(sop), "exactly one instance " + sop);
        }
        assertEquals(want.size(), held.size(), "nothing else in the study");
    }

    void awaitOffsetsCommitted() throws Exception {
        String topic = cluster.config().topics().results();
        try (Admin admin = Admin.create(cluster.adminProperties())) {
            await("committed offsets at the end of " + topic, Duration.ofSeconds(30), () -> {
                Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(config.consumerGroup())
                        .partitionsToOffsetAndMetadata().get(10, TimeUnit.SECONDS);
                Map<TopicPartition, OffsetSpec> latest = committed.keySet().stream()
                        .collect(Collectors.toMap(tp -> tp, tp -> OffsetSpec.latest()));
                var ends = admin.listOffsets(latest).all().get(10, TimeUnit.SECONDS);
                long lag = 0;
                long total = 0;
                for (var e : ends.entrySet()) {
                    OffsetAndMetadata c = committed.get(e.getKey());
                    lag += e.getValue().offset() - (c == null ? 0 : c.offset());
                    total += e.getValue().offset();
                }
                return total > 0 && lag == 0;
            });
        }
    }

    @Test
    void publishedResultsReachOrthancAndFhirAndAreCommitted() throws Exception {
        StudyResult a = study().build();
        StudyResult b = study().build();
        publisher.publish(a).get(30, TimeUnit.SECONDS);
        publisher.publish(b).get(30, TimeUnit.SECONDS);
        awaitInOrthanc(a);
        awaitInOrthanc(b);
        await("FHIR transactions", Duration.ofSeconds(30),
                () -> fhirHas(a.getStudy().getStudyInstanceUid()) && fhirHas(b.getStudy().getStudyInstanceUid()));
        awaitOffsetsCommitted();
        await("pending drained", Duration.ofSeconds(10),
                () -> service.pendingCount(PACS) == 0 && service.pendingCount("fhir") == 0);

        String metrics = given().when().get("/q/metrics").then().statusCode(200).extract().asString();
        assertTrue(metrics.contains("cxr_delivery_total{destination=\"fhir\",outcome=\"delivered\"}"), metrics);
        assertTrue(metrics.contains("cxr_delivery_total{destination=\"pacs-orthanc\",outcome=\"delivered\"}"));
        assertTrue(metrics.contains("cxr_delivery_pending{destination=\"pacs-orthanc\"} 0.0"));
        assertTrue(metrics.contains("cxr_study_end_to_end_seconds{quantile=\"0.95\"}"));
        assertTrue(metrics.lines().anyMatch(l -> l.startsWith("cxr_study_end_to_end_seconds_count")
                && Double.parseDouble(l.substring(l.lastIndexOf(' ') + 1)) >= 2));
    }

    /**
     * A study in parts, as workers publish it (one image per message), interleaved with another study: delivery
     * holds the parts, commits their offsets, and delivers one SR over all images once the last part is in.
     */
    @Test
    void aStudyInPartsIsDeliveredOnceAsAWholeWithItsOffsetsCommitted() throws Exception {
        StudyResult whole = PartAssemblyTest.wholeStudy(Long.toString(UUID.randomUUID().getMostSignificantBits() & Long.MAX_VALUE));
        List<StudyResult> parts = PartAssemblyTest.parts(whole);
        StudyResult other = study().build();
        for (int i = 0; i < parts.size(); i++) {
            publisher.publish(parts.get(i)).get(30, TimeUnit.SECONDS);
            if (i == 1) {
                publisher.publish(other).get(30, TimeUnit.SECONDS);
            }
        }
        awaitInOrthanc(other);
        // exactly the objects of the whole-study report (its SR's UID covers the sorted list of all images), once each
        awaitInOrthanc(org.cxrgateway.message.StudyParts.merge(parts));
        awaitOffsetsCommitted();
        String metrics = given().when().get("/q/metrics").then().statusCode(200).extract().asString();
        assertTrue(metrics.contains("cxr_delivery_partial_jobs 0.0"), metrics);
    }

    @Test
    void aDownPacsBlocksNeitherFhirNorNewStudiesAndItsDeadLettersReplayOnce() throws Exception {
        StudyResult a = study().build();
        StudyResult b = study().build();
        String sa = a.getStudy().getStudyInstanceUid();
        String sb = b.getStudy().getStudyInstanceUid();
        orthanc.stop();
        try {
            publisher.publish(a).get(30, TimeUnit.SECONDS);
            await("FHIR delivery of the first study", Duration.ofSeconds(30), () -> fhirHas(sa));
            publisher.publish(b).get(30, TimeUnit.SECONDS);
            await("FHIR delivery of the second study", Duration.ofSeconds(30), () -> fhirHas(sb));
            // the PACS has not given up on the first study yet: it neither held back FHIR nor the next message
            assertTrue(service.deadLetters().stream().noneMatch(l -> l.studyInstanceUid().equals(sa)),
                    "FHIR got the second study only after the PACS dead-lettered the first: blocking");
            assertTrue(service.pendingCount(PACS) >= 1);
            awaitOffsetsCommitted();

            await("both PACS deliveries dead-lettered", Duration.ofSeconds(60), () -> service.deadLetters().stream()
                    .filter(l -> l.destination().equals(PACS)).map(DeadLetterStore.DeadLetter::studyInstanceUid)
                    .toList().containsAll(List.of(sa, sb)));
            List<String> listed = asAdmin().when().get("/admin/dead-letters").then().statusCode(200)
                    .extract().jsonPath().getList("studyInstanceUid");
            assertTrue(listed.containsAll(List.of(sa, sb)), listed.toString());
        } finally {
            orthanc.start();
        }
        asAdmin().queryParam("destination", PACS).when().post("/admin/dead-letters/replay").then().statusCode(200)
                .body("replayed", org.hamcrest.Matchers.is(2))
                .body("stillDeadLettered", org.hamcrest.Matchers.is(0));
        awaitInOrthanc(a);
        awaitInOrthanc(b);
        asAdmin().when().post("/admin/dead-letters/replay").then().statusCode(200)
                .body("replayed", org.hamcrest.Matchers.is(0));
        // FHIR was up all along: one transaction per study, nothing resent by the PACS replay
        for (String s : List.of(sa, sb)) {
            assertEquals(1, fhir.receivedBundles.stream().filter(j -> j.contains("urn:oid:" + s + "\"")).count(), s);
        }
    }

    @Test
    void aPoisonResultIsDeadLetteredWithItsReasonAndThePartitionMovesOn() throws Exception {
        StudyResult good = study().build();
        String key = good.getStudy().getStudyInstanceUid();
        try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(cluster.producerProperties())) {
            // same key, same partition: the good result sits right behind the poison
            producer.send(new ProducerRecord<>(cluster.config().topics().results(), key, "not avro".getBytes()))
                    .get(30, TimeUnit.SECONDS);
        }
        publisher.publish(good).get(30, TimeUnit.SECONDS);
        awaitInOrthanc(good);
        await("FHIR delivery behind the poison", Duration.ofSeconds(30), () -> fhirHas(key));

        var props = cluster.consumerProperties("dlq-reader-" + UUID.randomUUID());
        ConsumerRecord<String, byte[]> dead = null;
        try (KafkaConsumer<String, byte[]> c = new KafkaConsumer<>(props)) {
            c.subscribe(List.of(cluster.config().topics().deadLetters()));
            long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
            while (dead == null && System.nanoTime() < deadline) {
                for (ConsumerRecord<String, byte[]> r : c.poll(Duration.ofMillis(500))) {
                    if (key.equals(r.key()) && "delivery".equals(DeadLetters.headerValue(r.headers(), DeadLetters.STAGE))) {
                        dead = r;
                    }
                }
            }
        }
        assertNotNull(dead, "poison result on the dead-letter topic");
        assertEquals("not avro", new String(dead.value()));
        String reason = DeadLetters.headerValue(dead.headers(), DeadLetters.REASON);
        assertTrue(reason != null && reason.startsWith("unreadable result"), reason);
        assertEquals(cluster.config().topics().results(), DeadLetters.headerValue(dead.headers(), DeadLetters.SOURCE_TOPIC));
        awaitOffsetsCommitted();
        assertFalse(service.deadLetters().stream().anyMatch(l -> l.studyInstanceUid().equals(key)));
    }
}
