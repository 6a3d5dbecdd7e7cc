package org.cxrgateway.delivery;

/** A delivery attempt failed. {@code retryable} is false when the receiver rejected the content itself. */
public class DeliveryException extends Exception {
    private final boolean retryable;

    public DeliveryException(String message, boolean retryable, Throwable cause) {
        super(message, cause);
        this.retryable = retryable;
    }

    public boolean retryable() {
        return retryable;
    }
}
