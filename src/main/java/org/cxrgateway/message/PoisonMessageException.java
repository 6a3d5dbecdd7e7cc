package org.cxrgateway.message;

/** A message that can never be processed, whatever the retry: it belongs on the dead-letter topic. */
public class PoisonMessageException extends Exception {
    public PoisonMessageException(String message) {
        super(message);
    }
}
