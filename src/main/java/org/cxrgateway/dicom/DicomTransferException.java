package org.cxrgateway.dicom;

/** A DICOM network operation failed (no association, aborted, refused). */
public class DicomTransferException extends Exception {
    private final boolean permanent;
    private final String status;

    public DicomTransferException(String message, Throwable cause) {
        this(message, cause, false, "");
    }

    /**
     * @param permanent the peer refused the association permanently (A-ASSOCIATE-RJ result "rejected-permanent",
     *                  PS3.8 9.3.4): the same request cannot succeed until its configuration or ours changes
     * @param status the peer's refusal as it gave it, e.g. "A-ASSOCIATE-RJ result 1 source 1 reason 3"; empty if none
     */
    public DicomTransferException(String message, Throwable cause, boolean permanent, String status) {
        super(message, cause);
        this.permanent = permanent;
        this.status = status == null ? "" : status;
    }

    public boolean permanent() {
        return permanent;
    }

    public String status() {
        return status;
    }
}
