package org.cxrgateway.delivery;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import javax.net.ssl.SSLContext;
import org.cxrgateway.report.ReportSet;

/**
 * STOW-RS of the SR and SCs to one DICOMweb origin server (PS3.18 10.5): one multipart/related request of the
 * objects the ledger does not yet hold, to {@code <url>/studies}. What the answer says decides, per instance:
 * <ul>
 *   <li>200, and the Referenced SOP Sequence of a 202 or 409: stored, recorded in the ledger;</li>
 *   <li>409 for instances already stored (Failure Reason 0111 Duplicate SOP Instance, or 45070 = B00E as Azure's
 *       DICOM service names it; or a 409 whose body names no instance): delivered, the archive has them;</li>
 *   <li>a failure A7xx / 0213 (out of resources): retried; any other Failure Reason: permanent, dead-lettered;</li>
 *   <li>any other 4xx: permanent (the request itself is refused: auth, size, type), except 408 and 429, which
 *       are "not now"; 5xx, timeouts and connection failures: retried, after Retry-After when the server gives one.</li>
 * </ul>
 * Credentials (bearer token, or basic auth) go only into the Authorization header, never into a message or log.
 */
public final class DicomWebDestination implements Destination {

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String FAILED_SOP_SEQUENCE = "00081198";
    private static final String REFERENCED_SOP_SEQUENCE = "00081199";
    private static final String REFERENCED_SOP_INSTANCE = "00081155";
    private static final String FAILURE_REASON = "00081197";
    /** The DIMSE status 0111, Duplicate SOP Instance (PS3.7 Annex C). */
    private static final int DUPLICATE_SOP_INSTANCE = 0x0111;
    /** Azure's DICOM service: "an instance with the same Study, Series and SOP Instance UIDs is already stored". */
    private static final int AZURE_ALREADY_EXISTS = 45070;
    /** An answer names each instance sent, a few hundred bytes each: 1 MiB is more than any honest one. */
    static final int MAX_ANSWER_BYTES = 1 << 20;

    private final String name;
    private final URI studies;
    private final Optional<String> authorization;
    private final Duration timeout;
    private final HttpClient client;
    private final MeterRegistry metrics;

    /**
     * @param url the server's DICOMweb root (e.g. http://pacs/dicom-web); STOW-RS posts to url + "/studies"
     * @param ssl null: the JDK's default CAs
     */
    public DicomWebDestination(String name, String url, Optional<String> bearerToken, Optional<String> user,
                               Optional<String> password, Duration timeout, SSLContext ssl, MeterRegistry metrics) {
        this.name = "dicomweb-" + name;
        String base = url.endsWith("/") ? url.substring(0, url.length() - 1) : url;
        this.studies = URI.create(base + "/studies");
        if (bearerToken.isPresent() && !bearerToken.get().isBlank()) {
            this.authorization = Optional.of("Bearer " + bearerToken.get());
        } else if (user.isPresent() && !user.get().isBlank()) {
            this.authorization = Optional.of("Basic " + Base64.getEncoder().encodeToString(
                    (user.get() + ":" + password.orElse("")).getBytes(StandardCharsets.UTF_8)));
        } else {
            this.authorization = Optional.empty();
        }
        this.timeout = timeout;
        HttpClient.Builder b = HttpClient.newBuilder().connectTimeout(timeout);
        if (ssl != null) {
            b.sslContext(ssl);
        }
        this.client = b.build();
        this.metrics = metrics;
    }

    @Override
    public String name() {
        return name;
    }

    /**
     * As for a PACS over DIMSE: the SRs in a request of their own, ahead of the pictures they reference (the ledger
     * holds each instance once stored, so the second request carries the rest).
     */
    @Override
    public boolean srsFirst() {
        return true;
    }

    @Override
    public String toString() {
        return name + " -> STOW-RS " + studies + (authorization.isEmpty() ? "" : " (" + authorization.get().split(" ")[0] + ")");
    }

    @Override
    public void deliver(ReportSet set, DeliveryLedger.View ledger) throws DeliveryException {
        Map<String, ReportSet.DicomObject> unsent = new LinkedHashMap<>();
        for (ReportSet.DicomObject o : set.dicom()) {
            if (!ledger.acked(o.sopInstanceUid())) {
                unsent.put(o.sopInstanceUid(), o);
            }
        }
        if (unsent.isEmpty()) {
            return;
        }
        String boundary = "cxr-" + UUID.randomUUID();
        List<HttpRequest.BodyPublisher> parts = new ArrayList<>();
        for (ReportSet.DicomObject o : unsent.values()) {
            parts.add(HttpRequest.BodyPublishers.ofByteArray(("--" + boundary
                    + "\r\nContent-Type: application/dicom\r\n\r\n").getBytes(StandardCharsets.US_ASCII)));
            parts.add(HttpRequest.BodyPublishers.ofByteArray(o.part10()));
            parts.add(HttpRequest.BodyPublishers.ofByteArray("\r\n".getBytes(StandardCharsets.US_ASCII)));
        }
        parts.add(HttpRequest.BodyPublishers.ofByteArray(("--" + boundary + "--\r\n").getBytes(StandardCharsets.US_ASCII)));
        HttpRequest.Builder req = HttpRequest.newBuilder(studies).timeout(timeout)
                .header("Content-Type", "multipart/related; type=\"application/dicom\"; boundary=" + boundary)
                .header("Accept", "application/dicom+json")
                .POST(HttpRequest.BodyPublishers.concat(parts.toArray(HttpRequest.BodyPublisher[]::new)));
        authorization.ifPresent(a -> req.header("Authorization", a));
        HttpResponse<String> resp;
        // the whole exchange, the answer's body included, within the timeout: a body that trickles is a timeout
        CompletableFuture<HttpResponse<String>> exchange = client.sendAsync(req.build(), BoundedText.handler(MAX_ANSWER_BYTES));
        try {
            resp = exchange.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            exchange.cancel(true);
            count("timeout");
            throw new DeliveryException("STOW-RS to " + studies + " timed out after " + timeout, true, e);
        } catch (ExecutionException e) {
            count("unreachable");
            throw new DeliveryException("STOW-RS to " + studies + " failed: " + e.getCause(), true, e.getCause());
        } catch (InterruptedException e) {
            exchange.cancel(true);
            Thread.currentThread().interrupt();
            throw new DeliveryException("interrupted", true, e);
        }
        int status = resp.statusCode();
        count(Integer.toString(status));
        Duration retryAfter = FhirDestination.retryAfter(resp.headers().firstValue("Retry-After").orElse(null));
        if (status == 200) {
            unsent.keySet().forEach(ledger::ack);
            return;
        }
        if (status == 202 || status == 409) {
            settle(status, resp.body(), unsent, ledger, retryAfter);
            return;
        }
        boolean retryable = status >= 500 || status == 408 || status == 429;
        throw new DeliveryException("STOW-RS to " + studies + " answered " + status + ": " + oneLine(resp.body()),
                retryable, null, retryable ? retryAfter : Duration.ZERO, "HTTP " + status);
    }

    /** A 202 or 409: what the Referenced and Failed SOP Sequences say, instance by instance. */
    private void settle(int status, String body, Map<String, ReportSet.DicomObject> unsent, DeliveryLedger.View ledger,
                        Duration retryAfter) throws DeliveryException {
        Verdict v = interpret(status, body, unsent.keySet());
        v.delivered().forEach(ledger::ack);
        if (!v.permanent().isEmpty()) {
            throw new DeliveryException("STOW-RS to " + studies + " answered " + status + ", refused " + v.permanent().size()
                    + " of " + unsent.size() + " objects: " + String.join(", ", v.permanent()), false, null, Duration.ZERO,
                    v.firstPermanentReason());
        }
        if (!v.retry().isEmpty() || unsent.keySet().stream().anyMatch(s -> !ledger.acked(s))) {
            throw new DeliveryException("STOW-RS to " + studies + " answered " + status + ", not stored for now: "
                    + (v.retry().isEmpty() ? "instances not named in the answer" : String.join(", ", v.retry())),
                    true, null, retryAfter);
        }
    }

    /**
     * What a 202 or 409 answer means for the instances sent.
     *
     * @param delivered stored, or already stored there
     * @param permanent refused for what they are ("SOP reason" each)
     * @param retry refused for now
     * @param firstPermanentReason the first permanent Failure Reason as 0xNNNN, for the dead letter; null if none
     */
    record Verdict(Set<String> delivered, List<String> permanent, List<String> retry, String firstPermanentReason) {
    }

    static Verdict interpret(int status, String body, Set<String> sent) {
        JsonNode root;
        try {
            root = JSON.readTree(body == null || body.isBlank() ? "{}" : body);
        } catch (IOException e) {
            root = JSON.createObjectNode();
        }
        Set<String> delivered = new LinkedHashSet<>();
        for (JsonNode item : root.path(REFERENCED_SOP_SEQUENCE).path("Value")) {
            String sop = item.path(REFERENCED_SOP_INSTANCE).path("Value").path(0).asText("");
            if (sent.contains(sop)) {
                delivered.add(sop);
            }
        }
        JsonNode failed = root.path(FAILED_SOP_SEQUENCE).path("Value");
        if (status == 409 && failed.isEmpty()) {
            // a conflict that names no instance: what the request conflicts with is what it would store
            return new Verdict(new LinkedHashSet<>(sent), List.of(), List.of(), null);
        }
        List<String> permanent = new ArrayList<>();
        List<String> retry = new ArrayList<>();
        String firstPermanent = null;
        for (JsonNode item : failed) {
            String sop = item.path(REFERENCED_SOP_INSTANCE).path("Value").path(0).asText("");
            int reason = item.path(FAILURE_REASON).path("Value").path(0).asInt(-1);
            String shown = sop + " " + String.format("%04X", reason & 0xFFFF);
            if (reason == DUPLICATE_SOP_INSTANCE || reason == AZURE_ALREADY_EXISTS) {
                if (sent.contains(sop)) {
                    delivered.add(sop);
                }
            } else if ((reason & 0xFF00) == 0xA700 || reason == 0x0213) {
                retry.add(shown);
            } else {
                permanent.add(shown);
                firstPermanent = firstPermanent == null ? String.format("0x%04X", reason & 0xFFFF) : firstPermanent;
            }
        }
        return new Verdict(delivered, permanent, retry, firstPermanent);
    }

    private void count(String outcome) {
        if (metrics != null) {
            metrics.counter("cxr.delivery.dicomweb.requests", "destination", name, "outcome", outcome).increment();
        }
    }

    private static String oneLine(String body) {
        String t = body == null ? "" : body.replaceAll("\\s+", " ").trim();
        return t.substring(0, Math.min(300, t.length()));
    }
}
