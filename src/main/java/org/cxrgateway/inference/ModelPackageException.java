package org.cxrgateway.inference;

/** A model package that cannot be used; the message names the package and the offending field. */
public class ModelPackageException extends RuntimeException {
    public ModelPackageException(String message) {
        super(message);
    }

    public ModelPackageException(String message, Throwable cause) {
        super(message, cause);
    }
}
