package org.cxrgateway.delivery;

import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Flow;

/**
 * An HTTP answer's body as text, at most {@code max} bytes of it kept: a hostile server's length is never
 * allocated. Past the bound the rest is cancelled, not read, and the text so far is the answer. Used with
 * sendAsync and a deadline on the whole exchange, so a body that trickles cannot hold delivery either.
 */
final class BoundedText implements HttpResponse.BodySubscriber<String> {

    private final CompletableFuture<String> text = new CompletableFuture<>();
    private final byte[] kept;
    private int length;
    private Flow.Subscription subscription;

    private BoundedText(int max) {
        this.kept = new byte[max];
    }

    static HttpResponse.BodyHandler<String> handler(int max) {
        return info -> new BoundedText(max);
    }

    @Override
    public CompletionStage<String> getBody() {
        return text;
    }

    @Override
    public void onSubscribe(Flow.Subscription s) {
        subscription = s;
        s.request(Long.MAX_VALUE);
    }

    @Override
    public void onNext(List<ByteBuffer> buffers) {
        for (ByteBuffer b : buffers) {
            int n = Math.min(b.remaining(), kept.length - length);
            b.get(kept, length, n);
            length += n;
        }
        if (length == kept.length) {
            subscription.cancel();
            onComplete();
        }
    }

    @Override
    public void onError(Throwable t) {
        text.completeExceptionally(t);
    }

    @Override
    public void onComplete() {
        text.complete(new String(kept, 0, length, StandardCharsets.UTF_8));
    }
}
