package org.cxrgateway.report;

import java.util.List;

/**
 * Everything one result message turns into: the DICOM objects for the PACS and the FHIR transaction for the
 * EHR. Rebuilding from the same message gives byte-identical UIDs and identifiers.
 */
public record ReportSet(String studyInstanceUid, String jobId, List<DicomObject> dicom, String fhirBundleJson) {

    /** One Part 10 object. {@code kind} is SR, SC (colour or guided heatmap) or PM (Parametric Map). */
    public record DicomObject(String kind, String sopClassUid, String sopInstanceUid, String seriesInstanceUid,
                              byte[] part10) {
    }
}
