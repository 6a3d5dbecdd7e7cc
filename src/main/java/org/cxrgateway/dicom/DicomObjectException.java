package org.cxrgateway.dicom;

/** An object could not be built or read: bad input, never a crash of the caller. */
public class DicomObjectException extends Exception {
    public DicomObjectException(String message, Throwable cause) {
        super(message, cause);
    }
}
