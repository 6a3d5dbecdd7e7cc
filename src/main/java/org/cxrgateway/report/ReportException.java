package org.cxrgateway.report;

/** A result message cannot be turned into reports (bad input); the message is dead-lettered, not retried. */
public class ReportException extends Exception {
    public ReportException(String message) {
        super(message);
    }

    public ReportException(String message, Throwable cause) {
        super(message, cause);
    }
}
