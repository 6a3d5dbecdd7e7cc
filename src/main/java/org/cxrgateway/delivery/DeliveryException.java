package org.cxrgateway.delivery;

import java.time.Duration;

/** A delivery attempt failed. {@code retryable} is false when the receiver rejected the content itself. */
public class DeliveryException extends Exception {
    private final boolean retryable;
    /** How long the receiver asked us to wait before the next attempt (HTTP Retry-After); zero when it did not say. */
    private final Duration retryAfter;
    /** The receiver's own code for the refusal (a DIMSE status such as "0xA900 (...)"); empty when it gave none. */
    private final String status;

    public DeliveryException(String message, boolean retryable, Throwable cause) {
        this(message, retryable, cause, Duration.ZERO, "");
    }

    public DeliveryException(String message, boolean retryable, Throwable cause, Duration retryAfter) {
        this(message, retryable, cause, retryAfter, "");
    }

    public DeliveryException(String message, boolean retryable, Throwable cause, Duration retryAfter, String status) {
        super(message, cause);
        this.retryable = retryable;
        this.retryAfter = retryAfter;
        this.status = status == null ? "" : status;
    }

    public Duration retryAfter() {
        return retryAfter;
    }

    public boolean retryable() {
        return retryable;
    }

    public String status() {
        return status;
    }
}
