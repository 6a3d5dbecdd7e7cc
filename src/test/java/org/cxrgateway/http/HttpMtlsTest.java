package org.cxrgateway.http;

import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.common.http.TestHTTPResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import org.cxrgateway.health.IngestReadinessTest;
import org.cxrgateway.queue.EmbeddedKafkaTestResource;
import org.cxrgateway.testing.HttpTokens;
import org.cxrgateway.testing.TestPki;
import org.junit.jupiter.api.Test;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Mutual TLS on the separate HTTPS port: a client certificate from the trusted CA whose CN is mapped to role
 * admin opens /admin without a token; no certificate, or one from another CA, gets no TLS session at all.
 * The plain HTTP port keeps working with bearer tokens and open health.
 */
@QuarkusTest
@TestProfile(HttpMtlsTest.WithMtls.class)
@WithTestResource(EmbeddedKafkaTestResource.class)
class HttpMtlsTest {

    static final Path PKI = Path.of("target/test-data/http-mtls/pki");

    /** The listener role, TLS from a throw-away PKI, and the client certificate's CN mapped to role admin. */
    public static class WithMtls extends IngestReadinessTest.ListenerRole {
        @Override
        public Map<String, String> getConfigOverrides() {
            try {
                if (Files.exists(PKI)) {
                    try (var files = Files.walk(PKI)) {
                        files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
                    }
                }
                new TestPki(PKI);
                Path roles = PKI.resolve("cert-roles.properties");
                Files.writeString(roles, "CXR\\ Test\\ Modality=admin\n");
                Map<String, String> config = new HashMap<>(super.getConfigOverrides());
                config.put("cxr.data-dir", "target/test-data/quarkus-http-mtls");
                config.put("quarkus.tls.key-store.p12.path", PKI.resolve("server.p12").toAbsolutePath().toString());
                config.put("quarkus.tls.key-store.p12.password", TestPki.PASSWORD);
                config.put("quarkus.tls.trust-store.p12.path", PKI.resolve("trust.p12").toAbsolutePath().toString());
                config.put("quarkus.tls.trust-store.p12.password", TestPki.PASSWORD);
                config.put("quarkus.http.auth.certificate-role-properties", roles.toAbsolutePath().toString());
                return config;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException(e);
            }
        }
    }

    @TestHTTPResource(value = "/", tls = true)
    URL https;

    @Test
    void aTrustedClientCertificateWithRoleAdminOpensAdmin() throws Exception {
        assertEquals(200, status(client("client"), "/admin/quarantine"));
        assertEquals(200, status(client("client"), "/q/health/ready"));
    }

    @Test
    void noCertificateOrAnUntrustedOneGetsNoSession() throws Exception {
        assertThrows(IOException.class, () -> status(client(null), "/q/health/live"));
        assertThrows(IOException.class, () -> status(client("rogue"), "/admin/quarantine"));
    }

    @Test
    void plainHttpKeepsBearerTokens() {
        given().when().get("/admin/quarantine").then().statusCode(401);
        HttpTokens.asAdmin().when().get("/admin/quarantine").then().statusCode(200);
        given().when().get("/q/health/live").then().statusCode(200);
    }

    private int status(HttpClient client, String path) throws Exception {
        return client.send(HttpRequest.newBuilder(URI.create(https.toString()).resolve(path))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.discarding()).statusCode();
    }

    /** An HTTPS client trusting the test CA, presenting the named identity's certificate (none: null). */
    private static HttpClient client(String identity) throws Exception {
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(load(PKI.resolve("trust.p12")));
        KeyManagerFactory kmf = null;
        if (identity != null) {
            kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(load(PKI.resolve(identity + ".p12")), TestPki.PASSWORD.toCharArray());
        }
        SSLContext ssl = SSLContext.getInstance("TLS");
        ssl.init(kmf == null ? null : kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return HttpClient.newBuilder().sslContext(ssl).connectTimeout(Duration.ofSeconds(5)).build();
    }

    private static KeyStore load(Path p12) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(p12)) {
            ks.load(in, TestPki.PASSWORD.toCharArray());
        }
        return ks;
    }
}
