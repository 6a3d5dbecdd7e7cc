package org.cxrgateway.dicom;

/** A DICOM network operation failed (no association, aborted, refused). */
public class DicomTransferException extends Exception {
    public DicomTransferException(String message, Throwable cause) {
        super(message, cause);
    }
}
