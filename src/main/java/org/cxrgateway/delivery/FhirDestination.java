package org.cxrgateway.delivery;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.node.TextNode;
import io.micrometer.core.instrument.MeterRegistry;
import org.cxrgateway.report.ReportSet;
import org.jboss.logging.Logger;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.net.URLEncoder;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.HexFormat;
import java.util.Optional;

/**
 * Writes the report's transaction Bundle to a FHIR server in the configured {@link FhirWriteMode}. The
 * credentials go only into the Authorization header and never into a message or log line. Whatever the
 * mode, every write is conditional on business identifiers, so a retry creates nothing twice.
 */
public final class FhirDestination implements Destination {

    private static final Logger LOG = Logger.getLogger(FhirDestination.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Written first, one request each, in this order: what the other resources reference. */
    private static final List<String> FOUNDATIONS = List.of("Patient", "Device", "ImagingStudy");

    /** The map key of the unnamed FHIR server in {@link DeliveryConfig#fhir()} ({@code cxr.delivery.fhir.base-url}). */
    public static final String UNNAMED = "<unnamed>";

    private final String name;
    private final URI base;
    private final Optional<String> authorization;
    private final Duration timeout;
    private final HttpClient client;
    private final FhirWriteMode mode;
    private final int maxTransactionEntries;
    private final MeterRegistry metrics;
    /** AUTO only: set once the server refused a transaction for its size; ordered from then on. */
    private final AtomicBoolean fellBack = new AtomicBoolean();
    /** AUTO only: the CapabilityStatement was read (once, at the first report). */
    private final AtomicBoolean probed = new AtomicBoolean();

    public FhirDestination(String baseUrl, Optional<String> bearerToken, Optional<String> user, Optional<String> password,
                           Duration timeout) {
        this(baseUrl, bearerToken, user, password, timeout, FhirWriteMode.TRANSACTION, 8, null);
    }

    public FhirDestination(String baseUrl, Optional<String> bearerToken, Optional<String> user, Optional<String> password,
                           Duration timeout, FhirWriteMode mode, int maxTransactionEntries, MeterRegistry metrics) {
        this("fhir", baseUrl, bearerToken, user, password, timeout, mode, maxTransactionEntries, metrics);
    }

    /** name: the destination's name in the ledger, dead letters, replay and metrics ({@code fhir}, {@code fhir-<name>}). */
    public FhirDestination(String name, String baseUrl, Optional<String> bearerToken, Optional<String> user,
                           Optional<String> password, Duration timeout, FhirWriteMode mode, int maxTransactionEntries,
                           MeterRegistry metrics) {
        this.name = name;
        this.base = URI.create(baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl);
        if (bearerToken.isPresent() && !bearerToken.get().isBlank()) {
            this.authorization = Optional.of("Bearer " + bearerToken.get());
        } else if (user.isPresent()) {
            this.authorization = Optional.of("Basic " + Base64.getEncoder().encodeToString(
                    (user.get() + ":" + password.orElse("")).getBytes(StandardCharsets.UTF_8)));
        } else {
            this.authorization = Optional.empty();
        }
        if (maxTransactionEntries < 1) {
            throw new IllegalArgumentException("cxr.delivery.fhir.max-transaction-entries must be at least 1, not "
                    + maxTransactionEntries);
        }
        this.timeout = timeout;
        this.client = HttpClient.newBuilder().connectTimeout(timeout).build();
        this.mode = mode;
        this.maxTransactionEntries = maxTransactionEntries;
        this.metrics = metrics;
    }

    @Override
    public String name() {
        return name;
    }

    /** The base URL only: credentials never reach a log line. */
    @Override
    public String toString() {
        return name + " -> " + base + " (" + mode.name().toLowerCase(Locale.ROOT) + ")";
    }

    @Override
    public void deliver(ReportSet set, DeliveryLedger.View ledger) throws DeliveryException {
        if (set.fhirBundleJson() == null) {
            return; // a retraction of a study whose report never reached FHIR
        }
        String key = "bundle-" + sha256(set.fhirBundleJson());
        if (ledger.acked(key)) {
            return;
        }
        if (mode == FhirWriteMode.AUTO && probed.compareAndSet(false, true) && !statesTransactions()) {
            fellBack.set(true);
            LOG.infof("FHIR server %s does not list the transaction interaction in its CapabilityStatement: writing in ordered mode",
                    base);
        }
        boolean ordered = mode == FhirWriteMode.ORDERED || (mode == FhirWriteMode.AUTO && fellBack.get());
        if (ordered) {
            writeOrdered(set.fhirBundleJson(), ledger, key);
        } else {
            Answer a = send("POST", base, set.fhirBundleJson(), Map.of());
            if (!a.ok() && mode == FhirWriteMode.AUTO && a.status() == 400 && namesASizeLimit(a.diagnostics())) {
                if (fellBack.compareAndSet(false, true)) {
                    LOG.warnf("FHIR server %s refused a transaction of this size (%s): writing in ordered mode from now on",
                            base, a.diagnostics());
                    if (metrics != null) {
                        metrics.counter("cxr.delivery.fhir.write.mode.fallbacks", "destination", name).increment();
                    }
                }
                writeOrdered(set.fhirBundleJson(), ledger, key);
            } else if (!a.ok()) {
                throw a.failure("transaction");
            }
        }
        ledger.ack(key);
    }

    /**
     * Ordered mode: the bundle's own entries, in dependency order. Foundations one by one (conditional
     * create, If-None-Exist as the bundle states it), then the other conditional creates in transactions of at
     * most maxTransactionEntries, then the conditional updates (Observations, then their DiagnosticReport) one
     * request each, in bundle order. Each urn:uuid reference is replaced by the server's Type/id once that is known.
     * Each step done is recorded in the ledger under the bundle's key (fullUrl -> Type/id), so that a retry
     * resumes at the first unfinished step, its references made with the ids recorded.
     */
    void writeOrdered(String bundleJson, DeliveryLedger.View ledger, String key) throws DeliveryException {
        JsonNode bundle;
        try {
            bundle = JSON.readTree(bundleJson);
        } catch (IOException e) {
            throw new DeliveryException("FHIR bundle is not JSON: " + e.getMessage(), false, e);
        }
        List<ObjectNode> foundations = new ArrayList<>();
        List<ObjectNode> middle = new ArrayList<>();
        List<ObjectNode> reports = new ArrayList<>();
        for (JsonNode e : bundle.path("entry")) {
            String type = e.path("resource").path("resourceType").asText();
            boolean update = "PUT".equals(e.path("request").path("method").asText());
            (FOUNDATIONS.contains(type) ? foundations : update ? reports : middle).add((ObjectNode) e);
        }
        foundations.sort((a, b) -> FOUNDATIONS.indexOf(type(a)) - FOUNDATIONS.indexOf(type(b)));
        Map<String, String> ids = new HashMap<>(ledger.steps(key));
        if (!ids.isEmpty()) {
            LOG.infof("ordered write of %s to %s resumes: %d resource(s) written before", key, base, ids.size());
        }
        List.of(foundations, middle, reports).forEach(l -> l.removeIf(e -> ids.containsKey(e.path("fullUrl").asText())));
        for (ObjectNode e : foundations) {
            ObjectNode resource = rewritten(e, ids, Set.of());
            Answer a = send("POST", base.resolve(base.getPath() + "/" + type(e)), resource.toString(),
                    Map.of("If-None-Exist", e.path("request").path("ifNoneExist").asText()));
            if (!a.ok()) {
                throw a.failure("conditional create of " + type(e));
            }
            ids.put(e.path("fullUrl").asText(), type(e) + "/" + a.resourceId(type(e)));
            ledger.steps(key, ids);
        }
        for (int i = 0; i < middle.size(); i += maxTransactionEntries) {
            List<ObjectNode> chunk = middle.subList(i, Math.min(middle.size(), i + maxTransactionEntries));
            Set<String> local = new java.util.HashSet<>();
            chunk.forEach(e -> local.add(e.path("fullUrl").asText()));
            ObjectNode tx = JSON.createObjectNode().put("resourceType", "Bundle").put("type", "transaction");
            ArrayNode entries = tx.putArray("entry");
            for (ObjectNode e : chunk) {
                ObjectNode copy = e.deepCopy();
                copy.set("resource", rewritten(e, ids, local));
                entries.add(copy);
            }
            Answer a = send("POST", base, tx.toString(), Map.of());
            if (!a.ok()) {
                throw a.failure("transaction of " + chunk.size() + " entries");
            }
            List<String> answered = FhirAnswer.locations(a.digest(), chunk.size());
            for (int k = 0; k < chunk.size(); k++) {
                String location = answered.get(k);
                String[] parts = location.split("/");
                if (parts.length < 2) {
                    throw new DeliveryException("FHIR server answered the transaction without a location for entry " + k, true, null);
                }
                int at = location.contains("/_history/") ? parts.length - 4 : parts.length - 2;
                ids.put(chunk.get(k).path("fullUrl").asText(), parts[at] + "/" + parts[at + 1]);
            }
            ledger.steps(key, ids);
        }
        for (ObjectNode e : reports) {
            ObjectNode resource = rewritten(e, ids, Set.of());
            String url = e.path("request").path("url").asText();
            int q = url.indexOf('?');
            Answer a = send("PUT", URI.create(base + "/" + type(e) + "?" + query(url.substring(q + 1))), resource.toString(), Map.of());
            if (!a.ok()) {
                throw a.failure("conditional update of " + type(e));
            }
            ids.put(e.path("fullUrl").asText(), type(e) + "/" + a.resourceId(type(e)));
            ledger.steps(key, ids);
        }
    }

    private static String type(JsonNode entry) {
        return entry.path("resource").path("resourceType").asText();
    }

    /** The entry's resource with every urn:uuid reference resolved; one still unknown (and not in this chunk) is a bug. */
    private static ObjectNode rewritten(ObjectNode entry, Map<String, String> ids, Set<String> local) throws DeliveryException {
        ObjectNode r = entry.path("resource").deepCopy();
        r.remove("id");
        List<String> missing = new ArrayList<>();
        rewrite(r, ids, local, missing);
        if (!missing.isEmpty()) {
            throw new DeliveryException("ordered FHIR write: " + type(entry) + " references " + missing
                    + " written later", false, null);
        }
        return r;
    }

    private static void rewrite(JsonNode node, Map<String, String> ids, Set<String> local, List<String> missing) {
        if (node instanceof ObjectNode o) {
            for (Iterator<Map.Entry<String, JsonNode>> it = o.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> f = it.next();
                if ("reference".equals(f.getKey()) && f.getValue().isTextual() && f.getValue().asText().startsWith("urn:uuid:")) {
                    String target = ids.get(f.getValue().asText());
                    if (target != null) {
                        f.setValue(TextNode.valueOf(target));
                    } else if (!local.contains(f.getValue().asText())) {
                        missing.add(f.getValue().asText());
                    }
                } else {
                    rewrite(f.getValue(), ids, local, missing);
                }
            }
        } else if (node instanceof ArrayNode a) {
            a.forEach(n -> rewrite(n, ids, local, missing));
        }
    }

    /** "identifier=system|value" with the value URL-encoded, as a conditional URL's query. */
    private static String query(String condition) {
        int eq = condition.indexOf('=');
        return condition.substring(0, eq + 1) + URLEncoder.encode(condition.substring(eq + 1), StandardCharsets.UTF_8);
    }

    /**
     * Whether the server's CapabilityStatement (GET [base]/metadata) lists the system interaction
     * "transaction". A server without a readable one is given the benefit of the doubt: true.
     */
    boolean statesTransactions() {
        try {
            Answer a = send("GET", URI.create(base + "/metadata"), null, Map.of());
            if (a.status() != 200 || !"CapabilityStatement".equals(a.digest().resourceType())) {
                return true;
            }
            return a.digest().interactions().contains("transaction");
        } catch (DeliveryException e) {
            return true;
        }
    }

    /** Medplum: "Transaction requires strict isolation but has too many entries"; others name the entry count. */
    static boolean namesASizeLimit(String diagnostics) {
        String d = diagnostics.toLowerCase(Locale.ROOT);
        return d.contains("too many entries") || d.contains("isolation") || (d.contains("entries") && d.contains("limit"))
                || d.contains("too large") || d.contains("exceeds the maximum");
    }

    /** One HTTP answer: status, Location header, what was kept of the body (FhirAnswer), Retry-After. */
    record Answer(int status, String location, FhirAnswer.Digest digest, Duration retryAfter) {
        boolean ok() {
            return status >= 200 && status < 300;
        }

        /** The OperationOutcome's first diagnostics or details text, else the body's start: one line, at most 300 characters. */
        String diagnostics() {
            String text = digest.diagnostics().isEmpty() ? digest.preview() : digest.diagnostics();
            text = text.replaceAll("\\s+", " ").trim();
            return text.substring(0, Math.min(300, text.length()));
        }

        /** The id of the resource created or found: from Location, else the body's id. */
        String resourceId(String type) throws DeliveryException {
            if (location != null && location.contains(type + "/")) {
                String rest = location.substring(location.lastIndexOf(type + "/") + type.length() + 1);
                return rest.split("/")[0];
            }
            String id = digest.id();
            if (id.isEmpty()) {
                throw new DeliveryException("FHIR server answered " + status + " without Location or id for " + type, true, null);
            }
            return id;
        }

        /**
         * 408, 429 and 5xx are the server's state; 412 (a conditional write matching several resources) and
         * other 4xx are about the content and will not heal by retrying.
         */
        DeliveryException failure(String what) {
            boolean retryable = status == 408 || status == 429 || status >= 500;
            return new DeliveryException("FHIR server answered " + status + " to the " + what + ": " + diagnostics(),
                    retryable, null, retryable ? retryAfter : Duration.ZERO);
        }
    }

    /** One request; body null for none (GET). */
    private Answer send(String method, URI uri, String body, Map<String, String> headers) throws DeliveryException {
        HttpRequest.Builder req = HttpRequest.newBuilder(uri).timeout(timeout)
                .header("Accept", "application/fhir+json")
                // ids and locations are all we read back; servers that honour it leave the resources out
                .header("Prefer", "return=minimal")
                .method(method, body == null ? HttpRequest.BodyPublishers.noBody()
                        : HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
        if (body != null) {
            req.header("Content-Type", "application/fhir+json; charset=utf-8");
        }
        headers.forEach(req::header);
        authorization.ifPresent(a -> req.header("Authorization", a));
        if (metrics != null) {
            metrics.counter("cxr.delivery.fhir.requests", "destination", name, "method", method).increment();
        }
        // the request's timeout covers the wait for the headers only: the whole exchange, body included, gets the same
        CompletableFuture<HttpResponse<FhirAnswer.Digest>> exchange = client.sendAsync(req.build(), FhirAnswer.HANDLER);
        try {
            HttpResponse<FhirAnswer.Digest> resp = exchange.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
            return new Answer(resp.statusCode(), resp.headers().firstValue("Location").orElse(null), resp.body(),
                    retryAfter(resp.headers().firstValue("Retry-After").orElse(null)));
        } catch (TimeoutException e) {
            exchange.cancel(true);
            badAnswer("timeout");
            throw new DeliveryException("FHIR server " + base + " did not answer " + method + " within " + timeout, true, e);
        } catch (ExecutionException e) {
            if (e.getCause() instanceof FhirAnswer.TooLarge tooLarge) {
                badAnswer("too-large");
                throw new DeliveryException("FHIR server " + base + " answered " + method + " with more than "
                        + FhirAnswer.MAX_BYTES + " bytes: not read further", false, tooLarge);
            }
            throw new DeliveryException("FHIR server " + base + " unreachable: " + e.getCause(), true, e.getCause());
        } catch (InterruptedException e) {
            exchange.cancel(true);
            Thread.currentThread().interrupt();
            throw new DeliveryException("interrupted", true, e);
        }
    }

    /** An answer the server did not finish in time, or that went past the size we read. */
    private void badAnswer(String reason) {
        if (metrics != null) {
            metrics.counter("cxr.delivery.fhir.bad.answers", "destination", name, "reason", reason).increment();
        }
    }

    /** Retry-After as delta-seconds or an HTTP-date (RFC 9110 10.2.3); zero when absent or unreadable. */
    static Duration retryAfter(String value) {
        if (value == null || value.isBlank()) {
            return Duration.ZERO;
        }
        String v = value.trim();
        try {
            if (v.chars().allMatch(Character::isDigit)) {
                return v.length() > 9 ? Duration.ofDays(1) : Duration.ofSeconds(Long.parseLong(v));
            }
            java.time.ZonedDateTime at = java.time.ZonedDateTime.parse(v, java.time.format.DateTimeFormatter.RFC_1123_DATE_TIME);
            Duration d = Duration.between(java.time.Instant.now(), at.toInstant());
            return d.isNegative() ? Duration.ZERO : d;
        } catch (RuntimeException e) {
            return Duration.ZERO;
        }
    }

    static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
