package org.cxrgateway.delivery;

/**
 * How a report reaches a FHIR server ({@code cxr.delivery.fhir.write-mode}).
 * <ul>
 *   <li>{@link #TRANSACTION}: one transaction Bundle of conditional creates. One request; suits servers
 *   without a size limit on transactions holding conditional operations (HAPI FHIR JPA).</li>
 *   <li>{@link #ORDERED}: idempotent requests in dependency order, each keyed on business identifiers:
 *   conditional creates of Patient, Device and ImagingStudy, then the Observations and Media in
 *   transactions of at most {@code max-transaction-entries}, then the DiagnosticReport by conditional update
 *   on its identifier, referencing the server ids returned. Suits servers that cap transactions (Medplum
 *   runs conditional transactions serializable and allows 8 entries; cloud FHIR stores cap entries per
 *   bundle). A retry after a crash between steps finds what exists and creates nothing twice.</li>
 *   <li>{@link #AUTO}: {@code transaction} until a server answers 400 naming a size or isolation limit, then
 *   {@code ordered} for that server from then on (one log line, metric
 *   {@code cxr_delivery_fhir_write_mode_fallbacks_total}); other errors are handled as in transaction mode.</li>
 * </ul>
 */
public enum FhirWriteMode {
    TRANSACTION, ORDERED, AUTO
}
