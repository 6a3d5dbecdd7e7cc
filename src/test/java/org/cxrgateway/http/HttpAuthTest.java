package org.cxrgateway.http;

import io.quarkus.test.common.WithTestResource;
import io.quarkus.test.junit.QuarkusTest;
import io.quarkus.test.junit.TestProfile;
import io.smallrye.jwt.build.Jwt;
import io.restassured.specification.RequestSpecification;
import org.cxrgateway.health.IngestReadinessTest;
import org.cxrgateway.queue.EmbeddedKafkaTestResource;
import org.cxrgateway.testing.HttpTokens;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.spec.PKCS8EncodedKeySpec;
import java.time.Instant;
import java.util.Base64;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.restassured.RestAssured.given;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The HTTP port's doors, over real HTTP against the running gateway: /admin needs role admin from a static
 * token or a JWT signed by the configured key and issuer; health and metrics stay open; each refusal moves
 * cxr_http_auth_failures_total.
 */
@QuarkusTest
@TestProfile(HttpAuthTest.WithJwt.class)
@WithTestResource(EmbeddedKafkaTestResource.class)
class HttpAuthTest {

    static final String ISSUER = "https://idp.test/cxr";
    /** Where the profile leaves the private key of the key pair it generated, for the test to sign with. */
    static final Path PRIVATE_KEY = Path.of("target/test-data/http-auth/jwt-signing-key.der");

    /** The listener role (it serves /admin/quarantine) and a JWT issuer whose public key is generated here. */
    public static class WithJwt extends IngestReadinessTest.ListenerRole {
        @Override
        public Map<String, String> getConfigOverrides() {
            KeyPair pair = rsaKeyPair();
            try {
                Files.createDirectories(PRIVATE_KEY.getParent());
                Files.write(PRIVATE_KEY, pair.getPrivate().getEncoded());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            Map<String, String> config = new HashMap<>(super.getConfigOverrides());
            config.put("cxr.data-dir", "target/test-data/quarkus-http-auth");
            config.put("mp.jwt.verify.issuer", ISSUER);
            config.put("mp.jwt.verify.publickey", Base64.getEncoder().encodeToString(pair.getPublic().getEncoded()));
            return config;
        }
    }

    @Test
    void adminNeedsTheAdminRole() throws Exception {
        String admin = "/admin/quarantine";
        double missing = failures("missing-token");
        double invalid = failures("invalid-token");
        double forbidden = failures("forbidden");

        given().when().get(admin).then().statusCode(401).header("WWW-Authenticate", "Bearer");
        given().auth().oauth2("not-a-configured-token").when().get(admin).then().statusCode(401);
        given().auth().oauth2(HttpTokens.INGEST).when().get(admin).then().statusCode(403);
        HttpTokens.asAdmin().when().get(admin).then().statusCode(200);
        HttpTokens.asAdmin().when().post("/admin/quarantine/retry").then().statusCode(200);

        PrivateKey key = signingKey();
        long now = Instant.now().getEpochSecond();
        bearer(Jwt.issuer(ISSUER).subject("ops").groups(Set.of("admin")).expiresIn(300).sign(key))
                .when().get(admin).then().statusCode(200);
        bearer(Jwt.issuer(ISSUER).subject("stow").groups(Set.of("ingest")).expiresIn(300).sign(key))
                .when().get(admin).then().statusCode(403);
        bearer(Jwt.issuer("https://elsewhere.test").subject("ops").groups(Set.of("admin")).expiresIn(300).sign(key))
                .when().get(admin).then().statusCode(401);
        bearer(Jwt.issuer(ISSUER).subject("ops").groups(Set.of("admin")).issuedAt(now - 3600).expiresAt(now - 600)
                .sign(key)).when().get(admin).then().statusCode(401);
        bearer(Jwt.issuer(ISSUER).subject("ops").groups(Set.of("admin")).expiresIn(300).sign(rsaKeyPair().getPrivate()))
                .when().get(admin).then().statusCode(401);

        assertEquals(missing + 1, failures("missing-token"), "missing-token refusals");
        assertEquals(invalid + 4, failures("invalid-token"), "invalid-token refusals (static, issuer, expired, key)");
        assertEquals(forbidden + 2, failures("forbidden"), "forbidden refusals (static, JWT)");
    }

    @Test
    void healthAndMetricsAreOpen() {
        for (String open : new String[] {"/q/health/live", "/q/health/ready", "/q/health/started", "/q/metrics"}) {
            given().when().get(open).then().statusCode(200);
            // a stale token does not close them either (authentication is not proactive)
            given().auth().oauth2("stale").when().get(open).then().statusCode(200);
        }
    }

    @Test
    void dicomwebIsReservedForTheIngestRole() {
        given().when().post("/dicomweb/studies").then().statusCode(401);
        HttpTokens.asAdmin().when().post("/dicomweb/studies").then().statusCode(403);
    }

    private static RequestSpecification bearer(String jwt) {
        return given().auth().oauth2(jwt);
    }

    /** The current value of cxr_http_auth_failures_total{path="admin",reason=...} (0 before the first). */
    private static double failures(String reason) {
        String metrics = given().when().get("/q/metrics").then().statusCode(200).extract().asString();
        Matcher m = Pattern.compile("(?m)^cxr_http_auth_failures_total\\{path=\"admin\",reason=\"" + reason
                + "\"\\} (\\S+)$").matcher(metrics);
        return m.find() ? Double.parseDouble(m.group(1)) : 0;
    }

    private static KeyPair rsaKeyPair() {
        try {
            KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
            generator.initialize(2048);
            return generator.generateKeyPair();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }

    private static PrivateKey signingKey() throws Exception {
        return KeyFactory.getInstance("RSA").generatePrivate(new PKCS8EncodedKeySpec(Files.readAllBytes(PRIVATE_KEY)));
    }
}
