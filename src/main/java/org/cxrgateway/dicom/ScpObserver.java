package org.cxrgateway.dicom;

/** Events of the listener, for metrics. Implementations must be cheap and never throw. */
public interface ScpObserver {

    void associationAccepted(AssociationInfo association);

    /**
     * reason: CALLED_AE_NOT_RECOGNIZED, CALLING_AE_NOT_RECOGNIZED, LOCAL_LIMIT_EXCEEDED, PEER_LIMIT_EXCEEDED,
     * ARTIM_EXPIRED, MALFORMED, TLS_HANDSHAKE_FAILED, NEGOTIATION_FAILED.
     */
    void associationRejected(String reason);

    /**
     * We aborted a connection for breaking the upper layer protocol (PS3.8 9.3), e.g. reason
     * PDU_LENGTH_EXCEEDED, PDV_LENGTH_INVALID, PDU_LENGTH_INVALID, UNEXPECTED_PDU, UNRECOGNIZED_PDU, COMMAND_TOO_LONG,
     * IDLE_TIMEOUT.
     */
    default void associationAborted(String reason) {
    }

    /** One presentation context was rejected, e.g. reason TRANSFER_SYNTAX_NOT_SUPPORTED. */
    void presentationContextRejected(String abstractSyntax, String reason);

    void instanceStored(InstanceHeader header, long bytes);

    void duplicateInstance(InstanceHeader header);

    /** A C-STORE answered with a failure: the outcome's label (OUT_OF_RESOURCES, IO_ERROR, ...) and status. */
    void instanceRejected(StoreOutcome outcome);

    ScpObserver NONE = new ScpObserver() {
        @Override public void associationAccepted(AssociationInfo a) { }
        @Override public void associationRejected(String reason) { }
        @Override public void presentationContextRejected(String abstractSyntax, String reason) { }
        @Override public void instanceStored(InstanceHeader header, long bytes) { }
        @Override public void duplicateInstance(InstanceHeader header) { }
        @Override public void instanceRejected(StoreOutcome outcome) { }
    };
}
