package org.cxrgateway.testing;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/** Debian's Orthanc, started on loopback with ephemeral ports and a temp storage folder; our AE is registered. */
public final class OrthancPeer implements AutoCloseable {

    /** Debian's orthanc-dicomweb. */
    public static final String DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

    public final int dicomPort;
    public final int httpPort;
    public final Path dir;
    private final String ourAe;
    private final int ourPort;
    private Process process;
    private String luaScript;
    private String dicomWebServers;
    private final HttpClient http = HttpClient.newHttpClient();

    public OrthancPeer(Path parent, String ourAe, int ourPort) throws IOException {
        // absolute: Orthanc resolves relative paths in its configuration against the configuration's folder
        this.dir = Files.createTempDirectory(parent, "orthanc").toAbsolutePath();
        this.dicomPort = freePort();
        this.httpPort = freePort();
        this.ourAe = ourAe;
        this.ourPort = ourPort;
    }

    public static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /** A Lua script for Orthanc to run, e.g. auto-routing in OnStoredInstance. Call before start(). */
    public OrthancPeer withLuaScript(String script) {
        this.luaScript = script;
        return this;
    }

    /**
     * Loads Debian's DICOMweb plugin (orthanc-dicomweb): Orthanc then serves QIDO-RS / STOW-RS under /dicom-web/
     * and knows one DICOMweb server, {@code name} at {@code url} (a base ending in '/', STOW-RS posts to
     * url + "studies"), sending {@code Authorization: Bearer token} when a token is given. Call before start().
     */
    public OrthancPeer withDicomWeb(String name, String url, String bearerToken) {
        String headers = bearerToken == null ? "" : ", \"HttpHeaders\": { \"Authorization\": \"Bearer " + bearerToken + "\" }";
        this.dicomWebServers = "{ \"" + name + "\": { \"Url\": \"" + url + "\"" + headers + " } }";
        return this;
    }

    /** Loads the DICOMweb plugin with no server of its own to push to (QIDO-RS and STOW-RS server only). */
    public OrthancPeer withDicomWeb() {
        this.dicomWebServers = "{}";
        return this;
    }

    public void start() throws Exception {
        Path config = dir.resolve("orthanc.json");
        Path lua = dir.resolve("scripts.lua");
        Files.writeString(lua, luaScript == null ? "" : luaScript);
        Files.writeString(config, """
                {
                  "Name": "cxr-test",
                  "StorageDirectory": "%s",
                  "IndexDirectory": "%s",
                  "DicomAet": "ORTHANC",
                  "DicomPort": %d,
                  "HttpPort": %d,
                  "RemoteAccessAllowed": false,
                  "AuthenticationEnabled": false,
                  "DicomCheckCalledAet": false,
                  "DicomModalities": { "cxr": ["%s", "127.0.0.1", %d] },
                  "Plugins": [%s],
                  "LuaScripts": ["%s"],
                  "StableAge": 1%s
                }
                """.formatted(dir.resolve("storage"), dir.resolve("index"), dicomPort, httpPort, ourAe, ourPort,
                dicomWebServers == null ? "" : "\"" + DICOMWEB_PLUGIN + "\"", lua.toAbsolutePath(),
                dicomWebServers == null ? "" : """
                        ,
                          "DicomWeb": { "Enable": true, "Root": "/dicom-web/", "Servers": %s }""".formatted(dicomWebServers)));
        ProcessBuilder pb = new ProcessBuilder("/usr/sbin/Orthanc", config.toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("orthanc.log").toFile());
        // Debian's Orthanc uses Debian's dcmtk network layer, which leaves Nagle on without this (about 40 ms of
        // delayed ACK per object it stores or sends)
        pb.environment().put("TCP_NODELAY", "1");
        process = pb.start();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (System.nanoTime() < deadline) {
            try {
                if (get("/system").contains("DicomPort")) {
                    return;
                }
            } catch (IOException e) {
                Thread.sleep(200);
            }
        }
        throw new IOException("Orthanc did not start: " + Files.readString(dir.resolve("orthanc.log")));
    }

    public String get(String path) throws IOException, InterruptedException {
        HttpResponse<String> r = send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + path))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IOException(path + " -> " + r.statusCode());
        }
        return r.body();
    }

    public String post(String path, String body) throws IOException, InterruptedException {
        HttpResponse<String> r = send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + path))
                .timeout(Duration.ofSeconds(10)).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IOException(path + " -> " + r.statusCode() + " " + r.body());
        }
        return r.body();
    }

    /**
     * POSTs bytes (e.g. a DICOM file to /instances, which Orthanc stores once however often it is sent, so the
     * one retry of {@link #send} is safe) and returns the answer's body; anything but 200 throws.
     */
    public String postBytes(String path, byte[] body, String contentType) throws IOException, InterruptedException {
        HttpResponse<String> r = send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + path))
                .timeout(Duration.ofSeconds(60)).header("Content-Type", contentType)
                .POST(HttpRequest.BodyPublishers.ofByteArray(body)).build(), HttpResponse.BodyHandlers.ofString());
        if (r.statusCode() != 200) {
            throw new IOException(path + " -> " + r.statusCode() + " " + r.body());
        }
        return r.body();
    }

    public byte[] getBytes(String path) throws IOException, InterruptedException {
        return send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort + path)).build(),
                HttpResponse.BodyHandlers.ofByteArray()).body();
    }

    /**
     * Orthanc closes idle keep-alive connections, and the JDK client may reuse one just closed. Every
     * request the tests send only reads (GET, /tools/find, /tools/lookup), so one retry is safe.
     */
    private <T> HttpResponse<T> send(HttpRequest request, HttpResponse.BodyHandler<T> body)
            throws IOException, InterruptedException {
        try {
            return http.send(request, body);
        } catch (IOException e) {
            Thread.sleep(100);
            return http.send(request, body);
        }
    }

    public void stop() throws InterruptedException {
        if (process != null) {
            process.destroy();
            if (!process.waitFor(10, java.util.concurrent.TimeUnit.SECONDS)) {
                process.destroyForcibly();
                process.waitFor();
            }
            process = null;
        }
    }

    @Override
    public void close() throws InterruptedException {
        stop();
    }
}
