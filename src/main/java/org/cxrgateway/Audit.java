package org.cxrgateway;

import org.jboss.logging.Logger;
import org.jboss.logging.MDC;

/**
 * The audit trail of a study's life: received, queued (or quarantined, retried, re-scored), scored, delivered (or
 * superseded), retracted, failed. One line per
 * event on the {@code cxr.audit} logger, with UIDs and timings only, never patient names. Every
 * log line written inside {@link #correlate(String)} carries the study as its correlation id.
 */
public final class Audit {

    private static final Logger LOG = Logger.getLogger("cxr.audit");
    static final String MDC_KEY = "study";

    public enum Event { RECEIVED, REJECTED, SKIPPED, QUEUED, QUARANTINED, RETRIED, SCORED, SRS_DELIVERED, DELIVERED, DEAD_LETTERED, REPLAYED, FAILED, SUPERSEDED, RETRACTED, RESCORED }

    private Audit() {
    }

    /**
     * @param detail key=value pairs without PHI, e.g. {@code "instances=2 ms=35"}
     */
    public static void record(Event event, String studyInstanceUid, String detail) {
        try (Scope ignored = correlate(studyInstanceUid)) {
            LOG.infof("%s study=%s %s", event, studyInstanceUid, detail == null ? "" : detail);
        }
    }

    /** Marks every log line of this thread with the study until the scope closes. */
    public static Scope correlate(String studyInstanceUid) {
        Object previous = MDC.get(MDC_KEY);
        MDC.put(MDC_KEY, "study=" + studyInstanceUid);
        return () -> {
            if (previous == null) {
                MDC.remove(MDC_KEY);
            } else {
                MDC.put(MDC_KEY, previous);
            }
        };
    }

    public interface Scope extends AutoCloseable {
        @Override
        void close();
    }
}
