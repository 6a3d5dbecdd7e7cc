package org.cxrgateway.delivery;

/** A delivery attempt failed. {@code retryable} is false when the receiver rejected the content itself. */
public class DeliveryException extends Exception {
    private final boolean retryable;
    /** How long the receiver asked us to wait before the next attempt (HTTP Retry-After); zero when it did not say. */
    private final java.time.Duration retryAfter;

    public DeliveryException(String message, boolean retryable, Throwable cause) {
        this(message, retryable, cause, java.time.Duration.ZERO);
    }

    public DeliveryException(String message, boolean retryable, Throwable cause, java.time.Duration retryAfter) {
        super(message, cause);
        this.retryable = retryable;
        this.retryAfter = retryAfter;
    }

    public java.time.Duration retryAfter() {
        return retryAfter;
    }

    public boolean retryable() {
        return retryable;
    }
}
