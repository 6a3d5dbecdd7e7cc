package org.cxrgateway.queue;

import io.quarkus.test.common.QuarkusTestResourceLifecycleManager;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.Map;
import java.util.stream.Stream;

/**
 * A real Kafka broker for tests: the same embedded KRaft broker the product uses by default,
 * on free loopback ports and a temporary log directory.
 */
public class EmbeddedKafkaTestResource implements QuarkusTestResourceLifecycleManager {

    private EmbeddedKafkaBroker broker;
    private Path dir;

    @Override
    public Map<String, String> start() {
        try {
            dir = Files.createTempDirectory("cxr-kafka-test");
            broker = new EmbeddedKafkaBroker(dir, 0, 0, 16 * 1024 * 1024).start();
        } catch (Exception e) {
            throw new IllegalStateException("cannot start the test Kafka broker", e);
        }
        return Map.of("cxr.kafka.bootstrap-servers", broker.bootstrapServers());
    }

    @Override
    public void stop() {
        if (broker != null) {
            broker.close();
        }
        deleteQuietly(dir);
    }

    static void deleteQuietly(Path dir) {
        if (dir == null) {
            return;
        }
        try (Stream<Path> files = Files.walk(dir)) {
            files.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a temp directory left behind is harmless
        }
    }
}
