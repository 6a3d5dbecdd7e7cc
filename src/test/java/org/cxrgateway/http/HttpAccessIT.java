package org.cxrgateway.http;

import org.cxrgateway.testing.GatewayProcess;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The packaged gateway with the product's defaults (prod profile, none of the test tokens): HTTP answers on
 * loopback only, /admin is closed (401) while no token and no JWT key is configured, and a static token given
 * the way deploy/ gives it (environment variables, SHA-256 only) opens it.
 */
class HttpAccessIT {

    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    /** Delivery only (it serves /admin/dead-letters), on an embedded broker of its own (ports 0: free ones). */
    private static Map<String, String> config(Path work) {
        Map<String, String> c = new HashMap<>();
        c.put("cxr.roles", "delivery");
        c.put("cxr.data-dir", work.resolve("data").toString());
        c.put("cxr.kafka.embedded.port", "0");
        c.put("cxr.kafka.embedded.controller-port", "0");
        return c;
    }

    @Test
    void closedByDefaultAndOnLoopbackOnly() throws Exception {
        Path work = Files.createTempDirectory(Path.of("target"), "http-access-");
        try (GatewayProcess gw = new GatewayProcess(work.resolve("gateway.log"), config(work)).start()) {
            gw.awaitReady(Duration.ofSeconds(120));
            assertEquals(401, status(gw, "/admin/dead-letters", null));
            assertEquals(401, status(gw, "/admin/dead-letters", "anything"));
            assertEquals(200, status(gw, "/q/metrics", null));
            assertTrue(gw.log().contains("HTTP GET /admin refused 401 (missing-token)"), gw.tail());
            assertFalse(gw.log().contains("anything"), "the token is never logged");

            // the kernel's own table of listening sockets: read, not probed, so no traffic leaves loopback
            int port = URI.create(gw.url("/")).getPort();
            List<InetAddress> bound = listeningAddresses(port);
            assertFalse(bound.isEmpty(), "a listening socket on port " + port);
            assertTrue(bound.stream().allMatch(InetAddress::isLoopbackAddress), "HTTP listens on loopback only: " + bound);
        }
    }

    /** Local addresses of the TCP sockets listening on the port, IPv4 and IPv6 (v4-mapped ones as IPv4). */
    private static List<InetAddress> listeningAddresses(int port) throws IOException {
        String hexPort = String.format("%04X", port);
        List<InetAddress> out = new ArrayList<>();
        for (String table : List.of("/proc/net/tcp", "/proc/net/tcp6")) {
            Path p = Path.of(table);
            if (!Files.exists(p)) {
                continue;
            }
            List<String> lines = Files.readAllLines(p);
            for (String line : lines.subList(1, lines.size())) {
                String[] f = line.trim().split("\\s+");
                String[] local = f[1].split(":");
                if (local[1].equals(hexPort) && f[3].equals("0A")) { // 0A: TCP_LISTEN
                    out.add(kernelAddress(local[0]));
                }
            }
        }
        return out;
    }

    @Test
    void aStaticTokenFromTheEnvironmentOpensAdmin() throws Exception {
        Path work = Files.createTempDirectory(Path.of("target"), "http-access-");
        String token = "it-" + System.nanoTime();
        String sha256 = HexFormat.of().formatHex(
                MessageDigest.getInstance("SHA-256").digest(token.getBytes(StandardCharsets.UTF_8)));
        try (GatewayProcess gw = new GatewayProcess(work.resolve("gateway.log"), config(work))
                .env("CXR_HTTP_AUTH_TOKENS_OPS_SHA256", sha256).env("CXR_HTTP_AUTH_TOKENS_OPS_ROLES", "admin").start()) {
            gw.awaitReady(Duration.ofSeconds(120));
            assertEquals(200, status(gw, "/admin/dead-letters", token));
            assertEquals(401, status(gw, "/admin/dead-letters", token + "x"));
            assertEquals(403, status(gw, "/dicomweb/studies", token));
            assertFalse(gw.log().contains(token), "the token is never logged");
        }
    }

    /** The kernel prints each 32-bit word of an address in host (little-endian) byte order. */
    private static InetAddress kernelAddress(String hex) throws IOException {
        byte[] b = HexFormat.of().parseHex(hex);
        for (int w = 0; w < b.length; w += 4) {
            byte t0 = b[w], t1 = b[w + 1];
            b[w] = b[w + 3];
            b[w + 1] = b[w + 2];
            b[w + 2] = t1;
            b[w + 3] = t0;
        }
        return InetAddress.getByAddress(b); // a v4-mapped IPv6 address comes back as its Inet4Address
    }

    private int status(GatewayProcess gw, String path, String bearer) throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(gw.url(path))).timeout(Duration.ofSeconds(10));
        if (bearer != null) {
            request.header("Authorization", "Bearer " + bearer);
        }
        return http.send(request.build(), HttpResponse.BodyHandlers.discarding()).statusCode();
    }
}
