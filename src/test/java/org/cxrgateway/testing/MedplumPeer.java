package org.cxrgateway.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Medplum's FHIR router (npm @medplum/fhir-router with its MemoryRepository) served over HTTP on loopback by
 * src/test/node/medplum/server.js under Debian's node: a second real FHIR server, one that caps transactions
 * holding conditional operations at 8 entries. The test command installs it with npm.
 */
public final class MedplumPeer implements AutoCloseable, FhirPeer {

    static final Path DIR = Path.of("src/test/node/medplum").toAbsolutePath();
    private static final ObjectMapper JSON = new ObjectMapper();
    private final Process process;
    private final int port;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    public MedplumPeer() throws Exception {
        this(java.util.Map.of());
    }

    /** env: e.g. DELAY_MS=300 to hold every answer (see server.js). */
    public MedplumPeer(java.util.Map<String, String> env) throws Exception {
        if (!Files.isDirectory(DIR.resolve("node_modules/@medplum/fhir-router"))) {
            throw new IllegalStateException("Medplum is not installed: run `npm ci --prefix " + DIR + "` (bin/test does)");
        }
        ProcessBuilder pb = new ProcessBuilder("node", "server.js").directory(DIR.toFile()).redirectErrorStream(true);
        pb.environment().putAll(env);
        process = pb.start();
        BufferedReader out = new BufferedReader(new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8));
        String line = CompletableFuture.supplyAsync(() -> {
            try {
                return out.readLine();
            } catch (IOException e) {
                return null;
            }
        }).get(60, TimeUnit.SECONDS);
        if (line == null || !line.startsWith("listening ")) {
            process.destroyForcibly();
            throw new IllegalStateException("Medplum server did not start: " + line);
        }
        port = Integer.parseInt(line.substring("listening ".length()).trim());
        // keep draining its output so that it never blocks on a full pipe; the request lines are kept
        Thread drain = new Thread(() -> {
            try {
                String l;
                while ((l = out.readLine()) != null) {
                    String[] f = l.split(" ", 4);
                    if (f.length == 4 && f[0].equals("request")) {
                        requests.add(new Request(Long.parseLong(f[1]), f[2], f[3]));
                    }
                }
            } catch (IOException ignored) {
                // the process ended
            }
        }, "medplum-out");
        drain.setDaemon(true);
        drain.start();
    }

    /** One request the server received: when (epoch ms), method and URL. */
    public record Request(long atEpochMs, String method, String url) {
    }

    /** Every request received so far, in order (the tests' own GETs included). */
    public final java.util.List<Request> requests = java.util.Collections.synchronizedList(new java.util.ArrayList<>());

    public String baseUrl() {
        return "http://127.0.0.1:" + port + "/fhir";
    }

    /** The in-memory repository answers chained searches with nothing (see FhirPeer). */
    @Override
    public boolean chainsSearches() {
        return false;
    }

    /** A search, e.g. search("DiagnosticReport", "identifier", "urn:ietf:rfc:3986|urn:oid:1.2"): the searchset Bundle. */
    @Override
    public JsonNode search(String type, String param, String value) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(baseUrl() + "/" + type + "?" + param + "="
                + URLEncoder.encode(value, StandardCharsets.UTF_8))).GET().build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IOException("search " + type + "?" + param + " answered " + r.statusCode() + ": " + r.body());
        }
        return JSON.readTree(r.body());
    }

    /** The next n writes (POST, PUT) are answered 429 with the peer's Retry-After, as a server under load answers. */
    public void throttleNext(int n) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/peer/throttle?count=" + n))
                .POST(HttpRequest.BodyPublishers.noBody()).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IOException("throttle control answered " + r.statusCode());
        }
    }

    /** How many of the throttled writes are still to be refused (0: every one was answered 429). */
    public int throttledStillToCome() throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/peer/throttle"))
                .GET().build(), HttpResponse.BodyHandlers.ofString());
        return JSON.readTree(r.body()).path("remaining").asInt(-1);
    }

    /** Creates a resource unconditionally (to set up a server's state); its answer's status. */
    public int create(String type, String json) throws IOException, InterruptedException {
        return http.send(HttpRequest.newBuilder(URI.create(baseUrl() + "/" + type)).header("Content-Type", "application/fhir+json")
                .POST(HttpRequest.BodyPublishers.ofString(json)).build(), HttpResponse.BodyHandlers.ofString()).statusCode();
    }

    /** Resources of a type on the server (all of them: the MemoryRepository holds only this test's). */
    public int count(String type) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(baseUrl() + "/" + type + "?_count=1000")).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        return JSON.readTree(r.body()).path("entry").size();
    }

    /** Reads a reference like "Patient/abc"; null if the server does not have it. */
    @Override
    public JsonNode read(String reference) throws IOException, InterruptedException {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(baseUrl() + "/" + reference)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        return r.statusCode() == 200 ? JSON.readTree(r.body()) : null;
    }

    @Override
    public void close() {
        process.destroyForcibly();
    }
}
