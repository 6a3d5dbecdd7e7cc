package org.cxrgateway.dicom;

/** The identifying attributes of a received instance, read before it is acknowledged. */
public record InstanceHeader(String sopClassUid, String sopInstanceUid, String studyInstanceUid,
                             String seriesInstanceUid, String transferSyntaxUid) {
}
