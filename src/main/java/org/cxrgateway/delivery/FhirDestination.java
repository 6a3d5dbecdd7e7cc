package org.cxrgateway.delivery;

import org.cxrgateway.report.ReportSet;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.Base64;
import java.util.HexFormat;
import java.util.Optional;

/**
 * POSTs the transaction Bundle to the FHIR base URL. The credentials go only into the Authorization header
 * and never into a message or log line.
 */
public final class FhirDestination implements Destination {

    private final URI base;
    private final Optional<String> authorization;
    private final Duration timeout;
    private final HttpClient client;

    public FhirDestination(String baseUrl, Optional<String> bearerToken, Optional<String> user, Optional<String> password,
                           Duration timeout) {
        this.base = URI.create(baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl);
        if (bearerToken.isPresent() && !bearerToken.get().isBlank()) {
            this.authorization = Optional.of("Bearer " + bearerToken.get());
        } else if (user.isPresent()) {
            this.authorization = Optional.of("Basic " + Base64.getEncoder().encodeToString(
                    (user.get() + ":" + password.orElse("")).getBytes(StandardCharsets.UTF_8)));
        } else {
            this.authorization = Optional.empty();
        }
        this.timeout = timeout;
        this.client = HttpClient.newBuilder().connectTimeout(timeout).build();
    }

    @Override
    public String name() {
        return "fhir";
    }

    /** The base URL only: credentials never reach a log line. */
    @Override
    public String toString() {
        return "fhir -> " + base;
    }

    @Override
    public void deliver(ReportSet set, DeliveryLedger.View ledger) throws DeliveryException {
        String key = "bundle-" + sha256(set.fhirBundleJson());
        if (ledger.acked(key)) {
            return;
        }
        HttpRequest.Builder req = HttpRequest.newBuilder(base).timeout(timeout)
                .header("Content-Type", "application/fhir+json; charset=utf-8")
                .header("Accept", "application/fhir+json")
                .POST(HttpRequest.BodyPublishers.ofString(set.fhirBundleJson(), StandardCharsets.UTF_8));
        authorization.ifPresent(a -> req.header("Authorization", a));
        HttpResponse<String> resp;
        try {
            resp = client.send(req.build(), BOUNDED_BODY);
        } catch (IOException e) {
            throw new DeliveryException("FHIR server " + base + " unreachable: " + e, true, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new DeliveryException("interrupted", true, e);
        }
        int s = resp.statusCode();
        if (s >= 200 && s < 300) {
            ledger.ack(key);
            return;
        }
        // 408, 429 and 5xx are the server's state; other 4xx are about the Bundle and will not heal by retrying
        boolean retryable = s == 408 || s == 429 || s >= 500;
        String body = resp.body() == null ? "" : resp.body();
        throw new DeliveryException("FHIR server answered " + s + ": " + body.substring(0, Math.min(300, body.length())),
                retryable, null);
    }

    /** What is read of a response body at most: enough for an OperationOutcome, never a peer-chosen size. */
    static final int MAX_RESPONSE_BYTES = 64 * 1024;

    /** The body as text, cut at MAX_RESPONSE_BYTES; the rest is discarded unread into memory. */
    static final HttpResponse.BodyHandler<String> BOUNDED_BODY = info -> HttpResponse.BodySubscribers.mapping(
            HttpResponse.BodySubscribers.ofInputStream(), in -> {
                try (in) {
                    byte[] head = in.readNBytes(MAX_RESPONSE_BYTES);
                    return new String(head, StandardCharsets.UTF_8);
                } catch (IOException e) {
                    return "";
                }
            });

    static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
