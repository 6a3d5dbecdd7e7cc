package org.cxrgateway.dicom;

/** Identity of one accepted association, as far as the ingest side needs it. */
public record AssociationInfo(long id, String callingAe, String calledAe, String remoteHost) {
}
