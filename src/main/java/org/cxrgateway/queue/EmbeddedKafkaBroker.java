package org.cxrgateway.queue;

import kafka.server.KafkaConfig;
import kafka.server.KafkaRaftServer;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.utils.Time;
import org.apache.kafka.metadata.storage.Formatter;

import java.io.IOException;
import java.io.PrintStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;

/**
 * A real, single-node Apache Kafka broker (KRaft, combined broker + controller) in this JVM.
 * It is the default for a single machine and for tests; it keeps its log under a directory, so
 * a restart finds every message it had acknowledged.
 */
public final class EmbeddedKafkaBroker implements AutoCloseable {

    private final Path logDir;
    private final int port;
    private final int controllerPort;
    private final int maxMessageBytes;
    private KafkaRaftServer server;

    public EmbeddedKafkaBroker(Path logDir, int port, int controllerPort, int maxMessageBytes) {
        this.logDir = logDir;
        this.port = port == 0 ? freePort() : port;
        this.controllerPort = controllerPort == 0 ? freePort() : controllerPort;
        this.maxMessageBytes = maxMessageBytes;
    }

    public synchronized EmbeddedKafkaBroker start() throws Exception {
        if (server != null) {
            return this;
        }
        Files.createDirectories(logDir);
        KafkaConfig config = KafkaConfig.fromProps(brokerProperties(), false);
        format(config);
        server = new KafkaRaftServer(config, Time.SYSTEM);
        server.startup();
        return this;
    }

    public String bootstrapServers() {
        return "127.0.0.1:" + port;
    }

    public Path logDir() {
        return logDir;
    }

    @Override
    public synchronized void close() {
        if (server != null) {
            server.shutdown();
            server.awaitShutdown();
            server = null;
        }
    }

    private Properties brokerProperties() {
        Properties p = new Properties();
        p.put("process.roles", "broker,controller");
        p.put("node.id", "1");
        p.put("controller.quorum.voters", "1@127.0.0.1:" + controllerPort);
        p.put("listeners", "PLAINTEXT://127.0.0.1:" + port + ",CONTROLLER://127.0.0.1:" + controllerPort);
        p.put("advertised.listeners", "PLAINTEXT://127.0.0.1:" + port);
        p.put("controller.listener.names", "CONTROLLER");
        p.put("inter.broker.listener.name", "PLAINTEXT");
        p.put("listener.security.protocol.map", "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT");
        p.put("log.dirs", logDir.toAbsolutePath().toString());
        // One node: every internal topic has a single replica.
        p.put("offsets.topic.replication.factor", "1");
        p.put("offsets.topic.num.partitions", "10");
        p.put("transaction.state.log.replication.factor", "1");
        p.put("transaction.state.log.min.isr", "1");
        p.put("share.coordinator.state.topic.replication.factor", "1");
        p.put("share.coordinator.state.topic.min.isr", "1");
        p.put("group.initial.rebalance.delay.ms", "0");
        p.put("message.max.bytes", Integer.toString(maxMessageBytes));
        p.put("replica.fetch.max.bytes", Integer.toString(maxMessageBytes));
        // Short shutdown: the broker is ours alone, nothing to migrate.
        p.put("controlled.shutdown.enable", "false");
        p.put("log.segment.bytes", Integer.toString(64 * 1024 * 1024));
        return p;
    }

    private void format(KafkaConfig config) throws Exception {
        Formatter formatter = new Formatter()
                .setPrintStream(new PrintStream(OutputStream.nullOutputStream()))
                .setNodeId(config.nodeId())
                // A restart keeps the existing log, so it must keep its cluster id too.
                .setClusterId(existingClusterId().orElseGet(() -> Uuid.randomUuid().toString()))
                .setIgnoreFormatted(true)
                .setControllerListenerName("CONTROLLER")
                .setMetadataLogDirectory(config.metadataLogDir())
                .setDirectories(List.of(logDir.toAbsolutePath().toString()));
        formatter.run();
    }

    private java.util.Optional<String> existingClusterId() throws IOException {
        Path meta = logDir.resolve("meta.properties");
        if (!Files.exists(meta)) {
            return java.util.Optional.empty();
        }
        Properties props = new Properties();
        try (var in = Files.newInputStream(meta)) {
            props.load(in);
        }
        return java.util.Optional.ofNullable(props.getProperty("cluster.id"));
    }

    static int freePort() {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new IllegalStateException("no free port on loopback", e);
        }
    }
}
