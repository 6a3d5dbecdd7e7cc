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
}
