package org.cxrgateway.delivery;

import org.cxrgateway.report.ReportSet;

/** A receiver of reports: a PACS, a FHIR server, the outbox folder. */
public interface Destination {

    /** Stable name: it keys the delivery ledger and the dead letters. */
    String name();

    /**
     * Sends what the ledger does not yet hold as acknowledged, and records each acknowledgement as it comes.
     * Throws when anything is left unsent.
     */
    void deliver(ReportSet set, DeliveryLedger.View ledger) throws DeliveryException;

    /**
     * True for a destination that should get each result's SRs on their own, as soon as they are written, and the
     * whole set after (what it acknowledged already is skipped by the ledger): a PACS, where a reader waits for the
     * SR and its explanation pictures may follow (over DIMSE or STOW-RS). False where one message must carry
     * everything (FHIR).
     */
    default boolean srsFirst() {
        return false;
    }
}
