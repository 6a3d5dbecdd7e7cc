package org.cxrgateway.testing;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;

/**
 * The packaged gateway (target/quarkus-app/quarkus-run.jar) as a separate OS process, so that a
 * test can kill -9 it exactly as a crash would, and start it again on the same data.
 */
public final class GatewayProcess implements AutoCloseable {

    private final Path log;
    private final Map<String, String> config = new TreeMap<>();
    private final Map<String, String> env = new TreeMap<>();
    private final int httpPort;
    private final HttpClient http = HttpClient.newHttpClient();
    private Process process;

    public GatewayProcess(Path log, Map<String, String> config) throws IOException {
        this.log = log;
        this.config.putAll(config);
        this.httpPort = OrthancPeer.freePort();
        this.config.put("quarkus.http.port", Integer.toString(httpPort));
    }

    public static Path jar() {
        Path jar = Path.of(System.getProperty("gateway.jar", "target/quarkus-app/quarkus-run.jar"));
        if (!Files.exists(jar)) {
            throw new IllegalStateException(jar + " is missing: run the process tests with mvn verify");
        }
        return jar;
    }

    /** An environment variable for the process, as a container or Kubernetes would set it; before start(). */
    public GatewayProcess env(String name, String value) {
        env.put(name, value);
        return this;
    }

    public GatewayProcess start() throws IOException {
        // bin/run's fail-fast flag: a JVM that ran out of memory exits (code 3) for its supervisor to restart
        List<String> cmd = new ArrayList<>(List.of("java", "-Xmx1g", "-XX:+ExitOnOutOfMemoryError"));
        config.forEach((k, v) -> cmd.add("-D" + k + "=" + v));
        cmd.add("-jar");
        cmd.add(jar().toString());
        ProcessBuilder builder = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.appendTo(log.toFile()));
        builder.environment().putAll(env);
        process = builder.start();
        return this;
    }

    /** Waits until /q/health/ready answers UP. */
    public GatewayProcess awaitReady(Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new IllegalStateException("gateway exited with " + process.exitValue() + ": " + tail());
            }
            try {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(url("/q/health/ready")))
                        .timeout(Duration.ofSeconds(5)).build(), HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200) {
                    return this;
                }
            } catch (IOException e) {
                // not listening yet
            }
            Thread.sleep(250);
        }
        throw new IllegalStateException("gateway not ready within " + timeout + ": " + tail());
    }

    public String get(String path) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create(url(path))).timeout(Duration.ofSeconds(10)).build(),
                HttpResponse.BodyHandlers.ofString()).body();
    }

    public long pid() {
        return process.pid();
    }

    /** The exit code once the process has ended by itself, or null if it still runs after the timeout. */
    public Integer awaitExit(Duration timeout) throws InterruptedException {
        return process.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS) ? process.exitValue() : null;
    }

    /** SIGKILL: no shutdown hook runs, nothing is flushed. */
    public void kill9() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(30, TimeUnit.SECONDS);
    }

    /** Everything the process logged so far. */
    public String log() throws IOException {
        return Files.readString(log);
    }

    public String tail() {
        try {
            List<String> lines = Files.readAllLines(log);
            return String.join("\n", lines.subList(Math.max(0, lines.size() - 40), lines.size()));
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    public String url(String path) {
        return "http://127.0.0.1:" + httpPort + path;
    }

    @Override
    public void close() throws InterruptedException {
        if (process != null && process.isAlive()) {
            process.destroy();
            if (!process.waitFor(20, TimeUnit.SECONDS)) {
                kill9();
            }
        }
    }
}
