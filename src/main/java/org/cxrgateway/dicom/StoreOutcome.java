package org.cxrgateway.dicom;

/**
 * How one instance we received (by C-STORE or STOW-RS) ended: the DIMSE status we answer (with why) and the
 * label it is counted under, in one value, so that a status and its metric label are never paired by hand.
 *
 * @param status the C-STORE-RSP status (PS3.4 B.2.3), or the STOW-RS Failure Reason (0008,1197)
 * @param label the {@code reason} tag of {@code cxr_ingest_instances_rejected}; STORED for a success
 */
public record StoreOutcome(DimseStatus status, String label) {

    public static final StoreOutcome STORED = of(DimseStatus.SUCCESS, "STORED");
    /** The spool's free-space reserve is reached, or the disk is full: the sender may retry later. */
    public static final StoreOutcome OUT_OF_RESOURCES = of(DimseStatus.OUT_OF_RESOURCES, "OUT_OF_RESOURCES");
    /** Writing or making durable failed for another reason than space. */
    public static final StoreOutcome IO_ERROR = of(DimseStatus.PROCESSING_FAILURE, "IO_ERROR");
    public static final StoreOutcome SOP_CLASS_NOT_SUPPORTED = of(DimseStatus.SOP_CLASS_NOT_SUPPORTED, "SOP_CLASS_NOT_SUPPORTED");
    /** The data set does not parse. */
    public static final StoreOutcome CANNOT_UNDERSTAND = of(DimseStatus.CANNOT_UNDERSTAND, "CANNOT_UNDERSTAND");
    /** The data set parses but ends before its declared elements do (truncated in transit or at the source). */
    public static final StoreOutcome INCOMPLETE_DATA_SET = of(DimseStatus.CANNOT_UNDERSTAND, "INCOMPLETE_DATA_SET");
    /** SOP Instance UID / Study Instance UID missing, invalid or not the one in the command. */
    public static final StoreOutcome UID_MISMATCH = of(DimseStatus.UID_MISMATCH, "UID_MISMATCH");

    /** STOW-RS: the instance's Study Instance UID is not the one in the request's path (PS3.18 10.5.1). */
    public static final StoreOutcome STUDY_UID_MISMATCH = of(DimseStatus.DATA_SET_DOES_NOT_MATCH_SOP_CLASS, "STUDY_UID_MISMATCH");
    /** STOW-RS: a part whose transfer syntax we cannot decode (JPEG-LS) or do not know; C-STORE refuses it at negotiation. */
    public static final StoreOutcome TRANSFER_SYNTAX_NOT_SUPPORTED = of(DimseStatus.CANNOT_UNDERSTAND, "TRANSFER_SYNTAX_NOT_SUPPORTED");
    /** STOW-RS: a part that is not application/dicom (its Content-Type says something else). */
    public static final StoreOutcome NOT_APPLICATION_DICOM = of(DimseStatus.CANNOT_UNDERSTAND, "NOT_APPLICATION_DICOM");

    private static StoreOutcome of(int code, String label) {
        return new StoreOutcome(DimseStatus.of(code), label);
    }

    public boolean stored() {
        return status.code() == DimseStatus.SUCCESS;
    }
}
