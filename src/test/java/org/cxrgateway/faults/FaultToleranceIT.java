package org.cxrgateway.faults;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.cxrgateway.queue.EmbeddedKafkaBroker;
import org.cxrgateway.message.MessageCodec;
import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.schema.v2.WorkingImage;
import org.cxrgateway.testing.GatewayProcess;
import org.cxrgateway.testing.HttpTokens;
import org.cxrgateway.testing.Multipart;
import org.cxrgateway.testing.OrthancPeer;
import org.cxrgateway.testing.RawStoreScu;
import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.function.Predicate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Crashes, as they happen: the gateway runs as its own process and is killed with SIGKILL, the
 * broker is stopped and started again. Nothing acknowledged may be lost, and consumers see every
 * study exactly once once they dedupe on the job id (study plus instance set).
 */
class FaultToleranceIT {

    private static final String JOBS = "cxr.study.jobs";
    private static final String RESULTS = "cxr.study.results";

    private Path work;
    private Path brokerDir;
    private int brokerPort;
    private int controllerPort;
    private EmbeddedKafkaBroker broker;

    @BeforeEach
    void startBroker() throws Exception {
        Files.createDirectories(Path.of("target", "faults"));
        work = Files.createTempDirectory(Path.of("target", "faults"), "run");
        brokerDir = work.resolve("kafka");
        brokerPort = OrthancPeer.freePort();
        controllerPort = OrthancPeer.freePort();
        broker = new EmbeddedKafkaBroker(brokerDir, brokerPort, controllerPort, 16 * 1024 * 1024).start();
    }

    @AfterEach
    void stopBroker() {
        if (broker != null) {
            broker.close();
        }
    }

    private Map<String, String> gatewayConfig(String roles) throws Exception {
        Map<String, String> c = new HashMap<>();
        c.put("cxr.roles", roles);
        c.put("cxr.kafka.bootstrap-servers", broker.bootstrapServers());
        c.put("cxr.data-dir", work.resolve("data").toString());
        c.put("cxr.listener.port", Integer.toString(OrthancPeer.freePort()));
        c.put("cxr.inference.packages-dir", Path.of("src/test/resources/tiny-models").toAbsolutePath().toString());
        c.put("cxr.kafka.request-timeout", "10s");
        return c;
    }

    /** What a test does to the listener once it has acknowledged a study: it must end the process. */
    private interface Fault {
        void strike(GatewayProcess gw) throws Exception;
    }

    /** How a test has the listener acknowledge the study: it returns once the sender was told it is stored. */
    private interface Sender {
        void send(GatewayProcess gw, Map<String, String> config, Path file) throws Exception;
    }

    /** storescu, and its C-STORE Success. */
    private static final Sender C_STORE = (gw, config, file) -> {
        Tools.Result sent = Tools.run("storescu", "-aec", "CXRGATEWAY", "127.0.0.1",
                config.get("cxr.listener.port"), file.toString());
        assertEquals(0, sent.exit(), "C-STORE succeeded before the fault: " + sent.out());
    };

    /** STOW-RS with the ingest token (its SHA-256 configured below), and its 200. */
    private static final Sender STOW_RS = (gw, config, file) -> {
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create(gw.url("/dicomweb/studies")))
                .header("Content-Type", Multipart.CONTENT_TYPE).header("Authorization", "Bearer " + HttpTokens.INGEST)
                .timeout(Duration.ofSeconds(60))
                .POST(HttpRequest.BodyPublishers.ofByteArray(Multipart.of(List.of(Files.readAllBytes(file))))).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, r.statusCode(), "STOW-RS stored before the fault: " + r.body());
    };

    /**
     * Starts a listener, has the sender store one study and see Success, then strikes the fault while the study
     * waits in the spool (a long quiet period holds it there). Returns the config for a restart on the same
     * data, quiet period shortened, once it is clear nothing was published before the fault.
     */
    private Map<String, String> acknowledgedThenFault(String study, String log, Fault fault) throws Exception {
        return acknowledgedThenFault(study, log, C_STORE, fault);
    }

    private Map<String, String> acknowledgedThenFault(String study, String log, Sender sender, Fault fault) throws Exception {
        Map<String, String> config = gatewayConfig("listener");
        config.put("cxr.assembly.quiet-period", "60s");
        // the ingest test token (org.cxrgateway.testing.HttpTokens.INGEST), by its SHA-256
        config.put("cxr.http.auth.tokens.stow.sha256", "12c9d8eb671641ca114db94b4bd7cea966626f0d9492a996808b1c6ee8ad6739");
        config.put("cxr.http.auth.tokens.stow.roles", "ingest");
        Path file = sourceDx(study);
        try (GatewayProcess gw = new GatewayProcess(work.resolve(log), config).start()) {
            gw.awaitReady(Duration.ofSeconds(120));
            sender.send(gw, config, file);
            fault.strike(gw);
        }
        assertEquals(0, jobsFor(study, Duration.ofSeconds(3)).size(), "nothing was published before the fault");
        config.put("cxr.assembly.quiet-period", "1s");
        return config;
    }

    @Test
    void listenerKilledBetweenStoreSuccessAndPublishPublishesExactlyOnceAfterRestart() throws Exception {
        String study = uid();
        Map<String, String> config = acknowledgedThenFault(study, "listener-1.log", GatewayProcess::kill9);
        try (GatewayProcess gw = new GatewayProcess(work.resolve("listener-2.log"), config).start()) {
            gw.awaitReady(Duration.ofSeconds(120));
            List<StudyJob> jobs = awaitJobs(study, 1, Duration.ofSeconds(60));
            assertEquals(1, jobs.size());
            assertEquals(1, jobs.get(0).getImages().size());
            // the audit trail names the study by UID, and no patient data reaches the log
            String log = gw.log();
            assertTrue(log.contains("QUEUED study=" + study), "audit line for the study");
            assertFalse(log.contains("Doe^Jane") || log.contains("FAULT-1"), "no patient name or ID in the log");
        }
        // A third start finds the study published and publishes nothing more.
        try (GatewayProcess gw = new GatewayProcess(work.resolve("listener-3.log"), config).start()) {
            gw.awaitReady(Duration.ofSeconds(120));
            Thread.sleep(4000);
            assertEquals(1, jobsFor(study, Duration.ofSeconds(3)).size(), "restart did not publish again");
        }
    }

    @Test
    void listenerKilledBetweenStowRs200AndPublishPublishesExactlyOnceAfterRestart() throws Exception {
        String study = uid();
        Map<String, String> config = acknowledgedThenFault(study, "stow-1.log", STOW_RS, GatewayProcess::kill9);
        try (GatewayProcess gw = new GatewayProcess(work.resolve("stow-2.log"), config).start()) {
            gw.awaitReady(Duration.ofSeconds(120));
            List<StudyJob> jobs = awaitJobs(study, 1, Duration.ofSeconds(60));
            assertEquals(1, jobs.size());
            assertEquals(1, jobs.get(0).getImages().size());
            Thread.sleep(3000);
            assertEquals(1, jobsFor(study, Duration.ofSeconds(3)).size(), "published once");
        }
    }

    @Test
    void listenerOutOfMemoryExitsAndTheRestartPublishesWhatItAcknowledged() throws Exception {
        String study = uid();
        Map<String, String> config = acknowledgedThenFault(study, "oom-1.log", gw -> {
            // a real heap exhaustion inside the gateway's JVM, as a leak or an unguarded allocation would cause
            com.sun.tools.attach.VirtualMachine vm = com.sun.tools.attach.VirtualMachine.attach(Long.toString(gw.pid()));
            try {
                vm.loadAgent(oomAgentJar().toString());
            } catch (Exception e) {
                // the target may die before it answers the attach call
            } finally {
                try {
                    vm.detach();
                } catch (Exception e) {
                    // already gone
                }
            }
            Integer exit = gw.awaitExit(Duration.ofSeconds(60));
            assertEquals(Integer.valueOf(3), exit, "ExitOnOutOfMemoryError ends the process with 3: " + gw.tail());
            assertTrue(gw.log().contains("Terminating due to java.lang.OutOfMemoryError"), gw.tail());
        });
        try (GatewayProcess gw = new GatewayProcess(work.resolve("oom-2.log"), config).start()) {
            gw.awaitReady(Duration.ofSeconds(120));
            List<StudyJob> jobs = awaitJobs(study, 1, Duration.ofSeconds(60));
            assertEquals(1, jobs.size(), "the acknowledged study, published once after the restart");
            assertEquals(1, jobs.get(0).getImages().size());
        }
    }

    /** A jar whose manifest names {@link OomAgent} as its Agent-Class, built from the compiled test class. */
    private Path oomAgentJar() throws Exception {
        Path jar = work.resolve("oom-agent.jar");
        java.util.jar.Manifest mf = new java.util.jar.Manifest();
        mf.getMainAttributes().put(java.util.jar.Attributes.Name.MANIFEST_VERSION, "1.0");
        mf.getMainAttributes().putValue("Agent-Class", OomAgent.class.getName());
        String entry = OomAgent.class.getName().replace('.', '/') + ".class";
        try (var out = new java.util.jar.JarOutputStream(Files.newOutputStream(jar), mf);
             var in = OomAgent.class.getClassLoader().getResourceAsStream(entry)) {
            out.putNextEntry(new java.util.jar.JarEntry(entry));
            in.transferTo(out);
            out.closeEntry();
        }
        return jar;
    }

    @Test
    void listenerKilledDuringAnAssociationLosesNothingAndTheRetriedInstanceCompletesTheStudy() throws Exception {
        Map<String, String> config = gatewayConfig("listener");
        config.put("cxr.assembly.quiet-period", "60s");
        String study = uid();
        Path first = sourceDx(study);
        Path second = sourceDx(study);
        String secondSop = Tools.run("dcmdump", "+P", "0008,0018", second.toString()).out()
                .replaceAll("(?s).*\\[([0-9.]+)\\].*", "$1").trim();
        try (GatewayProcess gw = new GatewayProcess(work.resolve("assoc-1.log"), config).start()) {
            gw.awaitReady(Duration.ofSeconds(120));
            String port = config.get("cxr.listener.port");
            Tools.Result sent = Tools.run("storescu", "-aec", "CXRGATEWAY", "127.0.0.1", port, first.toString());
            assertEquals(0, sent.exit(), sent.out());
            // The second instance is halfway through its transfer, unacknowledged, when the gateway dies.
            byte[] dataSet = Files.readAllBytes(second);
            try (var open = RawStoreScu.storeHalf(Integer.parseInt(port), "MODALITY", "CXRGATEWAY",
                    "1.2.840.10008.5.1.4.1.1.1.1", secondSop, dataSet)) {
                Thread.sleep(500);
                gw.kill9();
            }
        }
        config.put("cxr.assembly.quiet-period", "1s");
        try (GatewayProcess gw = new GatewayProcess(work.resolve("assoc-2.log"), config).start()) {
            gw.awaitReady(Duration.ofSeconds(120));
            // The sender saw no response for the second instance, so it sends it again (and the first too).
            Tools.Result retried = Tools.run("storescu", "-aec", "CXRGATEWAY", "127.0.0.1",
                    config.get("cxr.listener.port"), first.toString(), second.toString());
            assertEquals(0, retried.exit(), retried.out());
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            StudyJob latest = null;
            while (System.nanoTime() < deadline) {
                latest = jobsFor(study, Duration.ofSeconds(2)).stream()
                        .max(java.util.Comparator.comparingInt(StudyJob::getRevision)).orElse(null);
                if (latest != null && latest.getImages().size() == 2) {
                    break;
                }
            }
            assertTrue(latest != null, "a job was published after the restart");
            List<String> sops = latest.getImages().stream().map(SourceImage::getSopInstanceUid).sorted().toList();
            assertEquals(2, sops.size(), "both instances, each once: " + sops);
            assertEquals(2, new HashSet<>(sops).size());
            assertTrue(sops.contains(secondSop));
        }
        try (var files = Files.list(work.resolve("data").resolve("spool").resolve("studies").resolve(study))) {
            assertEquals(2, files.filter(f -> f.toString().endsWith(".dcm")).count(),
                    "no partial or duplicate file in the spool");
        }
    }

    @Test
    void studiesStoredWhileTheBrokerIsDownArePublishedWhenItIsBack() throws Exception {
        Map<String, String> config = gatewayConfig("listener");
        config.put("cxr.assembly.quiet-period", "1s");
        String study = uid();
        Path file = sourceDx(study);
        try (GatewayProcess gw = new GatewayProcess(work.resolve("listener.log"), config).start()) {
            gw.awaitReady(Duration.ofSeconds(120));
            broker.close();
            Tools.Result sent = Tools.run("storescu", "-aec", "CXRGATEWAY", "127.0.0.1",
                    config.get("cxr.listener.port"), file.toString());
            assertEquals(0, sent.exit(), "the spool accepts while Kafka is down: " + sent.out());
            Thread.sleep(5000);
            assertTrue(gw.get("/q/health/ready").contains("DOWN"), "readiness reports Kafka down");
            broker = new EmbeddedKafkaBroker(brokerDir, brokerPort, controllerPort, 16 * 1024 * 1024).start();
            List<StudyJob> jobs = awaitJobs(study, 1, Duration.ofSeconds(90));
            assertEquals(1, jobs.size());
        }
    }

    @Test
    void workerKilledInTheMiddleOfABatchLosesNoStudy() throws Exception {
        Map<String, String> config = gatewayConfig("worker");
        // The real DenseNet-121 demo packages: slow enough that the kill finds work in flight.
        config.remove("cxr.inference.packages-dir");
        config.put("cxr.inference.max-batch", "4");
        config.put("cxr.inference.max-wait", "200ms");
        int studies = 40;
        Set<String> jobIds = new HashSet<>();
        Properties p = new Properties();
        p.put("bootstrap.servers", broker.bootstrapServers());
        p.put("acks", "all");
        p.put("max.request.size", Integer.toString(16 * 1024 * 1024));
        try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(p, new StringSerializer(), new ByteArraySerializer())) {
            for (int i = 0; i < studies; i++) {
                StudyJob job = job(uid(), i);
                jobIds.add(job.getJobId());
                producer.send(new ProducerRecord<>(JOBS, job.getStudy().getStudyInstanceUid(), MessageCodec.encode(job))).get();
            }
        }
        Set<String> results = new HashSet<>();
        try (GatewayProcess gw = new GatewayProcess(work.resolve("worker-1.log"), config).start()) {
            // Kill as soon as the first results are out: later batches are in flight or queued.
            collect(RESULTS, "results-1", Duration.ofSeconds(180), r -> !r.isEmpty(), results);
            gw.kill9();
        }
        assertTrue(results.size() < studies, "the kill came before the end (" + results.size() + " of " + studies + ")");
        try (GatewayProcess gw = new GatewayProcess(work.resolve("worker-2.log"), config).start()) {
            collect(RESULTS, "results-2", Duration.ofSeconds(180), r -> r.containsAll(jobIds), results);
        }
        assertEquals(jobIds, results, "every study has a result after the restart");
    }

    // --- helpers ---

    private List<StudyJob> awaitJobs(String study, int expected, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        List<StudyJob> jobs = List.of();
        while (System.nanoTime() < deadline) {
            jobs = jobsFor(study, Duration.ofSeconds(2));
            if (jobs.size() >= expected) {
                Thread.sleep(2000);
                return jobsFor(study, Duration.ofSeconds(2));
            }
        }
        return jobs;
    }

    /** Distinct jobs (by job id, as consumers dedupe) for one study, read from the start of the topic. */
    private List<StudyJob> jobsFor(String study, Duration poll) throws Exception {
        // a job travels one image per message: its parts, by index, make the whole job
        Map<String, java.util.TreeMap<Integer, StudyJob>> byId = new HashMap<>();
        for (ConsumerRecord<String, byte[]> r : readAll(JOBS, poll)) {
            if (study.equals(r.key())) {
                StudyJob job = MessageCodec.decodeJob(r.value());
                byId.computeIfAbsent(job.getJobId(), k -> new java.util.TreeMap<>()).put(job.getPartIndex(), job);
            }
        }
        List<StudyJob> out = new ArrayList<>();
        for (var parts : byId.values()) {
            StudyJob first = parts.firstEntry().getValue();
            if (parts.size() == first.getPartCount()) {
                List<SourceImage> images = new ArrayList<>();
                parts.values().forEach(p -> images.addAll(p.getImages()));
                out.add(StudyJob.newBuilder(first).setImages(images).setPartCount(1).build());
            }
        }
        return out;
    }

    private List<ConsumerRecord<String, byte[]>> readAll(String topic, Duration poll) {
        Properties c = new Properties();
        c.put("bootstrap.servers", broker.bootstrapServers());
        c.put("max.partition.fetch.bytes", Integer.toString(16 * 1024 * 1024));
        List<ConsumerRecord<String, byte[]>> out = new ArrayList<>();
        try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(c, new StringDeserializer(), new ByteArrayDeserializer())) {
            var partitions = consumer.partitionsFor(topic, Duration.ofSeconds(10)).stream()
                    .map(pi -> new org.apache.kafka.common.TopicPartition(topic, pi.partition())).toList();
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long deadline = System.nanoTime() + poll.toNanos();
            while (System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200)).forEach(out::add);
            }
        }
        return out;
    }

    private void collect(String topic, String group, Duration timeout, Predicate<Set<String>> done, Set<String> into)
            throws Exception {
        Properties c = new Properties();
        c.put("bootstrap.servers", broker.bootstrapServers());
        c.put("group.id", group + "-" + UUID.randomUUID());
        c.put("auto.offset.reset", "earliest");
        c.put("max.partition.fetch.bytes", Integer.toString(16 * 1024 * 1024));
        try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(c, new StringDeserializer(), new ByteArrayDeserializer())) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + timeout.toNanos();
            while (System.nanoTime() < deadline && !done.test(into)) {
                for (ConsumerRecord<String, byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    StudyResult result = MessageCodec.decodeResult(r.value());
                    into.add(result.getJobId());
                }
            }
        }
        assertTrue(done.test(into), "condition not reached within " + timeout + "; have " + into.size());
    }

    private Path sourceDx(String study) throws Exception {
        Path f = work.resolve("dx-" + UUID.randomUUID() + ".dcm");
        Tools.Result made = Tools.run("/usr/bin/python3", "src/test/resources/make_source_dx.py", f.toString(),
                study, uid(), uid(), "FAULT-1");
        assertEquals(0, made.exit(), made.out());
        return f;
    }

    private static StudyJob job(String study, int seed) {
        int w = 256;
        int h = 256;
        byte[] pixels = new byte[w * h];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                pixels[y * w + x] = (byte) ((x * 3 + y * 5 + seed * 17) & 0xff);
            }
        }
        String sop = uid();
        return StudyJob.newBuilder()
                .setJobId("job-" + study)
                .setCreatedAtEpochMs(System.currentTimeMillis())
                .setStudy(StudyInfo.newBuilder().setStudyInstanceUid(study).setPatientId("FAULT-" + seed).build())
                .setImages(List.of(SourceImage.newBuilder()
                        .setSopInstanceUid(sop).setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1")
                        .setSeriesInstanceUid(uid()).setModality("DX").setViewPosition("PA")
                        .setSourceRows(h).setSourceColumns(w)
                        .setImage(WorkingImage.newBuilder().setWidth(w).setHeight(h).setBitsPerPixel(8)
                                .setEncoding(PixelEncoding.RAW).setPixels(ByteBuffer.wrap(pixels)).build())
                        .build()))
                .setSkipped(List.of())
                .build();
    }

    private static String uid() {
        return "2.25." + new BigInteger(UUID.randomUUID().toString().replace("-", ""), 16);
    }
}
