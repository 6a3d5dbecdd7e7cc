package org.cxrgateway.http;

import org.cxrgateway.testing.GatewayProcess;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.NetworkInterface;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;
import java.util.Optional;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
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

            int port = URI.create(gw.url("/")).getPort();
            Optional<InetAddress> external = NetworkInterface.networkInterfaces()
                    .flatMap(NetworkInterface::inetAddresses)
                    .filter(a -> a instanceof Inet4Address && !a.isLoopbackAddress()).findFirst();
            if (external.isPresent()) {
                assertThrows(IOException.class, () -> new Socket(external.get(), port).close(),
                        "HTTP must not answer on " + external.get().getHostAddress());
            }
        }
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

    private int status(GatewayProcess gw, String path, String bearer) throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(gw.url(path))).timeout(Duration.ofSeconds(10));
        if (bearer != null) {
            request.header("Authorization", "Bearer " + bearer);
        }
        return http.send(request.build(), HttpResponse.BodyHandlers.discarding()).statusCode();
    }
}
