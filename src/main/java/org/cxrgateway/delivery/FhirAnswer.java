package org.cxrgateway.delivery;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonStreamContext;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.async.ByteBufferFeeder;

import java.io.IOException;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Flow;

/**
 * A FHIR server's answer read as it streams in, keeping only what delivery uses of it: the resource type and id,
 * the first issue's diagnostics (an OperationOutcome), each transaction-response entry's location, and the
 * CapabilityStatement's system interactions. Jackson's non-blocking parser takes each chunk as it arrives, so memory
 * stays at those few values whatever the answer holds (a CapabilityStatement of megabytes, a transaction response
 * that ignored {@code Prefer: return=minimal} and carries every resource back). A body over {@link #MAX_BYTES} ends
 * the exchange ({@link TooLarge}); the caller bounds its time.
 */
final class FhirAnswer implements HttpResponse.BodySubscriber<FhirAnswer.Digest> {

    /** More than any answer we read needs (HAPI's CapabilityStatement is under 1 MiB); never a peer-chosen size. */
    static final long MAX_BYTES = 8L * 1024 * 1024;
    /** Text kept of the body's start, for a diagnostics line when the body is not FHIR JSON. */
    static final int PREVIEW_BYTES = 2048;
    private static final JsonFactory FACTORY = new JsonFactory();

    /** What was kept of one answer. */
    record Digest(String resourceType, String id, String diagnostics, Map<Integer, String> entryLocations,
                  Set<String> interactions, String preview) {
    }

    /** The answer went past {@link #MAX_BYTES}: the exchange was cancelled there. */
    static final class TooLarge extends IOException {
        TooLarge() {
            super("answer over " + MAX_BYTES + " bytes");
        }
    }

    private final CompletableFuture<Digest> result = new CompletableFuture<>();
    private final byte[] preview = new byte[PREVIEW_BYTES];
    private int previewLength;
    private long received;
    private Flow.Subscription subscription;
    private JsonParser parser;
    private boolean json = true;
    private String resourceType = "";
    private String id = "";
    private String diagnostics = "";
    private String detailsText = "";
    private final Map<Integer, String> locations = new HashMap<>();
    private final Set<String> interactions = new LinkedHashSet<>();

    static final HttpResponse.BodyHandler<Digest> HANDLER = info -> new FhirAnswer();

    FhirAnswer() {
        try {
            parser = FACTORY.createNonBlockingByteBufferParser();
        } catch (IOException e) {
            json = false;
        }
    }

    @Override
    public void onSubscribe(Flow.Subscription s) {
        subscription = s;
        s.request(1);
    }

    @Override
    public void onNext(List<ByteBuffer> items) {
        for (ByteBuffer b : items) {
            received += b.remaining();
            if (received > MAX_BYTES) {
                subscription.cancel();
                result.completeExceptionally(new TooLarge());
                return;
            }
            int keep = Math.min(b.remaining(), PREVIEW_BYTES - previewLength);
            if (keep > 0) {
                b.duplicate().get(preview, previewLength, keep);
                previewLength += keep;
            }
            if (json) {
                try {
                    ((ByteBufferFeeder) parser.getNonBlockingInputFeeder()).feedInput(b);
                    drain();
                } catch (IOException | RuntimeException e) {
                    json = false; // not JSON (or not well-formed): the preview says what it was
                }
            }
        }
        subscription.request(1);
    }

    @Override
    public void onError(Throwable t) {
        result.completeExceptionally(t);
    }

    @Override
    public void onComplete() {
        if (json) {
            try {
                ((ByteBufferFeeder) parser.getNonBlockingInputFeeder()).endOfInput();
                drain();
            } catch (IOException | RuntimeException e) {
                json = false;
            }
        }
        String d = !diagnostics.isEmpty() ? diagnostics : detailsText;
        result.complete(new Digest(resourceType, id, d, Map.copyOf(locations), Set.copyOf(interactions),
                new String(preview, 0, previewLength, StandardCharsets.UTF_8)));
    }

    @Override
    public CompletionStage<Digest> getBody() {
        return result;
    }

    /** Every token the input so far completes; only string values at the paths delivery reads are kept. */
    private void drain() throws IOException {
        JsonToken t;
        while ((t = parser.nextToken()) != null && t != JsonToken.NOT_AVAILABLE) {
            if (t == JsonToken.VALUE_STRING) {
                keep(parser.getParsingContext(), parser.getText());
            }
        }
    }

    /** The value's path as names with [] for arrays (entry[].response.location), and the outermost array's index. */
    private void keep(JsonStreamContext at, String value) {
        StringBuilder path = new StringBuilder();
        int index = -1;
        for (JsonStreamContext c = at; c != null && !c.inRoot(); c = c.getParent()) {
            if (c.inArray()) {
                path.insert(0, "[]");
                index = c.getCurrentIndex();
            } else {
                path.insert(0, (c.getParent() != null && c.getParent().inRoot() ? "" : ".") + c.getCurrentName());
            }
        }
        switch (path.toString()) {
            case "resourceType" -> resourceType = value;
            case "id" -> id = value;
            case "issue[].diagnostics" -> {
                if (index == 0) {
                    diagnostics = value;
                }
            }
            case "issue[].details.text" -> {
                if (index == 0) {
                    detailsText = value;
                }
            }
            case "entry[].response.location" -> locations.put(index, value);
            case "rest[].interaction[].code" -> interactions.add(value);
            default -> {
                // not read
            }
        }
    }

    /** The locations of entries 0..n-1, in order ("" where an entry had none). */
    static List<String> locations(Digest d, int n) {
        List<String> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(d.entryLocations().getOrDefault(i, ""));
        }
        return out;
    }
}
