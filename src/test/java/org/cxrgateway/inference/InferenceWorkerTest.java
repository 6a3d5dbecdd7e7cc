package org.cxrgateway.inference;

import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import jakarta.inject.Inject;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.cxrgateway.queue.DeadLetters;
import org.cxrgateway.queue.EmbeddedKafkaTestResource;
import org.cxrgateway.queue.KafkaCluster;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.SkippedInstance;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.schema.v2.WorkingImage;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.is;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The worker against a real (embedded) Kafka broker and the tiny model packages: jobs in, results
 * out, poison messages dead-lettered without stalling the partition, offsets committed only for
 * acknowledged work.
 */
@QuarkusTest
@WithTestResource(EmbeddedKafkaTestResource.class)
class InferenceWorkerTest {

    @Inject
    KafkaCluster cluster;
    @Inject
    ModelRegistry registry;
    @Inject
    InferenceConfig config;

    static SourceImage image(String uid, WorkingImage img) {
        return SourceImage.newBuilder().setSopInstanceUid(uid).setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1")
                .setSeriesInstanceUid("1.2.3.4").setModality("DX").setViewPosition("PA")
                .setSourceRows(img.getHeight()).setSourceColumns(img.getWidth()).setImage(img).build();
    }

    static StudyJob job(String studyUid, int schemaVersion, List<SourceImage> images) {
        return StudyJob.newBuilder().setSchemaVersion(schemaVersion).setJobId("job-" + studyUid).setCreatedAtEpochMs(1)
                .setStudy(StudyInfo.newBuilder().setStudyInstanceUid(studyUid).build())
                .setImages(images).setSkipped(List.of(new SkippedInstance("1.2.9", "LATERAL_VIEW"))).build();
    }

    /** A version 1 job as a v1 assembler wrote it (schemas/kafka/messages-v1.avdl), single-object encoded. */
    static byte[] v1Job(String studyUid, WorkingImage img) {
        var v1 = org.cxrgateway.schema.v1.StudyJob.newBuilder().setJobId("job-" + studyUid).setCreatedAtEpochMs(1)
                .setStudy(org.cxrgateway.schema.v1.StudyInfo.newBuilder().setStudyInstanceUid(studyUid).build())
                .setImages(List.of(org.cxrgateway.schema.v1.SourceImage.newBuilder().setSopInstanceUid(studyUid + ".1")
                        .setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1").setSeriesInstanceUid("1.2.3.4").setModality("DX")
                        .setViewPosition("PA").setSourceRows(img.getHeight()).setSourceColumns(img.getWidth())
                        .setImage(org.cxrgateway.schema.v1.WorkingImage.newBuilder().setWidth(img.getWidth())
                                .setHeight(img.getHeight()).setBitsPerPixel(img.getBitsPerPixel())
                                .setEncoding(org.cxrgateway.schema.v1.PixelEncoding.valueOf(img.getEncoding().name()))
                                .setPixels(img.getPixels().duplicate()).build())
                        .build()))
                .setSkipped(List.of()).build();
        try {
            java.nio.ByteBuffer b = v1.toByteBuffer();
            byte[] out = new byte[b.remaining()];
            b.get(out);
            return out;
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @Test
    void jobsBecomeResultsPoisonIsDeadLetteredAndOffsetsCommitted() throws Exception {
        registry.ready().get();
        given().when().get("/q/health/ready").then().body("checks.find { it.name == 'inference-models' }.status", is("UP"));

        String run = UUID.randomUUID().toString().substring(0, 8);
        String a = "1.2.826.1." + run + ".1", b = "1.2.826.1." + run + ".2", c = "1.2.826.1." + run + ".3";
        String jobs = cluster.config().topics().jobs();
        byte[] bad = "not avro".getBytes();
        byte[] v3 = MessageCodec.encode(job("1.2.826.1." + run + ".9", 3, List.of()));
        // a job the v1 assembler published before a rolling upgrade: the v2 worker still scores it
        String d = "1.2.826.1." + run + ".4";
        byte[] v1 = v1Job(d, Fixtures.image(256, 256, 8, 4));
        try (KafkaProducer<String, byte[]> p = new KafkaProducer<>(cluster.producerProperties())) {
            // all on one partition: the poison messages sit between good jobs
            p.send(new ProducerRecord<>(jobs, 0, a, MessageCodec.encode(job(a, MessageCodec.SCHEMA_VERSION, List.of(
                    image(a + ".1", Fixtures.image(300, 260, 8, 1)), image(a + ".2", Fixtures.image(200, 240, 16, 2))))))).get();
            p.send(new ProducerRecord<>(jobs, 0, "garbage-" + run, bad)).get();
            p.send(new ProducerRecord<>(jobs, 0, "v3-" + run, v3)).get();
            p.send(new ProducerRecord<>(jobs, 0, d, v1)).get();
            p.send(new ProducerRecord<>(jobs, 0, b, MessageCodec.encode(job(b, MessageCodec.SCHEMA_VERSION, List.of(image(b + ".1", Fixtures.image(224, 224, 8, 3))))))).get();
            p.send(new ProducerRecord<>(jobs, 0, c, MessageCodec.encode(job(c, MessageCodec.SCHEMA_VERSION, List.of())))).get();
        }

        Map<String, StudyResult> results = new HashMap<>();
        Map<String, StudyResult> previews = new HashMap<>();
        Map<String, String> jobIdHeaders = new HashMap<>();
        Map<String, String> reasons = new HashMap<>();
        Properties props = cluster.consumerProperties("test-reader-" + run);
        try (KafkaConsumer<String, byte[]> r = new KafkaConsumer<>(props)) {
            r.subscribe(List.of(cluster.config().topics().results(), cluster.config().topics().deadLetters()));
            long until = System.currentTimeMillis() + 120_000;
            while ((results.size() < 4 || reasons.size() < 2) && System.currentTimeMillis() < until) {
                for (ConsumerRecord<String, byte[]> rec : r.poll(Duration.ofMillis(200))) {
                    if (rec.topic().equals(cluster.config().topics().results()) && Set.of(a, b, c, d).contains(rec.key())) {
                        StudyResult got = MessageCodec.decodeResult(rec.value());
                        if (got.getPreview()) {
                            assertFalse(results.containsKey(rec.key()), "a preview precedes its result on the partition");
                            previews.put(rec.key(), got);
                            continue;
                        }
                        results.put(rec.key(), got);
                        jobIdHeaders.put(rec.key(), DeadLetters.headerValue(rec.headers(), "cxr.job-id"));
                    } else if (rec.key() != null && rec.key().endsWith(run) && rec.topic().equals(cluster.config().topics().deadLetters())) {
                        reasons.put(rec.key(), DeadLetters.headerValue(rec.headers(), DeadLetters.REASON));
                    }
                }
            }
        }
        assertEquals(Set.of(a, b, c, d), results.keySet(), "one result per good job, the v1 job too");
        // a preview went ahead of each result with guided maps, and of no other
        for (var e : results.entrySet()) {
            boolean guided = e.getValue().getImages().stream().flatMap(i -> i.getRuns().stream())
                    .flatMap(m -> m.getFindings().stream()).anyMatch(f -> f.getGuided() != null);
            assertEquals(guided, previews.containsKey(e.getKey()), "preview of " + e.getKey());
        }
        assertEquals(1, results.get(d).getImages().size());
        assertEquals("job-" + d, results.get(d).getJobId());
        assertEquals(1, results.get(d).getPartCount());
        // the largest result the producer was given, from its gauge: within the 1 MiB bound
        String metrics = given().when().get("/q/metrics").then().statusCode(200).extract().asString();
        String gauge = metrics.lines().filter(l -> l.startsWith("cxr_kafka_largest_message_bytes{")
                && l.contains("topic=\"" + cluster.config().topics().results() + "\"")).findFirst().orElseThrow();
        double largest = Double.parseDouble(gauge.substring(gauge.lastIndexOf(' ') + 1));
        assertTrue(largest > 0 && largest <= 1 << 20, gauge);
        assertEquals(2, reasons.size(), "both poison messages dead-lettered: " + reasons);
        assertTrue(reasons.get("v3-" + run).contains("schemaVersion 3"), reasons.toString());
        assertTrue(reasons.get("garbage-" + run).contains("StudyJob"), reasons.toString());

        StudyResult ra = results.get(a);
        assertEquals("job-" + a, ra.getJobId());
        assertEquals("job-" + a, jobIdHeaders.get(a), "results carry the cxr.job-id header, as jobs do");
        assertEquals(2, ra.getImages().size());
        assertEquals(List.of("1.2.9"), ra.getSkipped().stream().map(SkippedInstance::getSopInstanceUid).toList(),
                "the job's skipped instances are copied into its result, for the report's instance count");
        assertTrue(ra.getInferenceMs() > 0 && ra.getBatchSize() >= 1);
        for (ImageResult ir : ra.getImages()) {
            assertEquals(2, ir.getRuns().size());
            ModelRun chest = ir.getRuns().stream().filter(m -> m.getModelId().equals("chest14")).findFirst().orElseThrow();
            ModelRun covid = ir.getRuns().stream().filter(m -> m.getModelId().equals("covid3")).findFirst().orElseThrow();
            assertEquals(14, chest.getFindings().size());
            assertEquals(1, covid.getFindings().size(), "covid3 reports only COVID-19");
            assertEquals("840539006", covid.getFindings().get(0).getCode().getValue());
            assertEquals("cpu", chest.getEngine());
            assertTrue(!chest.getDiagnostic());
            for (ModelRun m : ir.getRuns()) {
                for (Finding f : m.getFindings()) {
                    assertTrue(f.getProbability() >= 0 && f.getProbability() <= 1);
                    assertEquals(f.getProbability() >= f.getThreshold(), f.getPositive());
                    if (f.getPositive()) {
                        assertNotNull(f.getActivation(), f.getLabel());
                        // the raw CAM at feature resolution, placed on a rectangle inside the working image
                        var act = f.getActivation();
                        assertEquals(act.getWidth() * act.getHeight(), act.getValues().size());
                        assertTrue(act.getWidth() <= 64 && act.getRegionWidth() > 0 && act.getRegionX() + act.getRegionWidth() <= ir.getImage().getWidth());
                        assertTrue(act.getValues().stream().allMatch(v -> v >= 0), "ReLU'd");
                    } else {
                        assertNull(f.getActivation());
                        assertNull(f.getGuided(), "guided maps for positive findings only");
                    }
                }
                // of the test profile's tiny packages (src/test/resources/tiny-models) chest14 ships the guided graph
                // and covid3 does not: that one still scores and sends Grad-CAM, with no guided map
                if (m.getModelId().equals("chest14")) {
                    long positives = m.getFindings().stream().filter(Finding::getPositive).count();
                    long guided = m.getFindings().stream().filter(f -> f.getGuided() != null).count();
                    assertEquals(Math.min(4, positives), guided, "chest14: a guided map for each explained positive finding (at most 4)");
                } else {
                    assertTrue(m.getFindings().stream().allMatch(f -> f.getGuided() == null), m.getModelId() + ": no guided graph, no guided map");
                }
            }
        }
        assertEquals(0, results.get(c).getImages().size());

        // every consumed job was acknowledged, so the group's committed offset reaches the end of the partition
        TopicPartition tp = new TopicPartition(jobs, 0);
        long deadline = System.currentTimeMillis() + 30_000;
        long committed = -1, end;
        try (Admin admin = Admin.create(cluster.adminProperties());
             KafkaConsumer<String, byte[]> probe = new KafkaConsumer<>(cluster.consumerProperties("probe-" + run))) {
            end = probe.endOffsets(List.of(tp)).get(tp);
            while (committed < end && System.currentTimeMillis() < deadline) {
                OffsetAndMetadata om = admin.listConsumerGroupOffsets(config.groupId()).partitionsToOffsetAndMetadata().get().get(tp);
                committed = om == null ? -1 : om.offset();
                Thread.sleep(100);
            }
        }
        assertEquals(end, committed);
    }

    @Test
    void batchesAcrossStudies() throws Exception {
        MicroBatcher batcher = registry.ready().get();
        List<java.util.concurrent.CompletableFuture<StudyResult>> fs = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            String uid = "1.2.826.2." + i;
            fs.add(batcher.submit(job(uid, MessageCodec.SCHEMA_VERSION, List.of(image(uid + ".1", Fixtures.image(128, 128, 8, i))))));
        }
        int maxBatch = 0;
        for (var f : fs) {
            maxBatch = Math.max(maxBatch, f.get().getBatchSize());
        }
        assertTrue(maxBatch > 1, "five single-image studies submitted together share a batch (max " + maxBatch + ")");
    }
}
