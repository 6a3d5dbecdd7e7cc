package org.cxrgateway.report;

import org.cxrgateway.dicom.DicomObjectWriter;
import org.cxrgateway.dicom.SrModel.Coded;

/** The values of {@link ReportConfig}, as a plain record so that builders can run without CDI. */
public record ReportSettings(int seriesNumberBase, boolean positiveOnly, int maxSecondaryCaptures,
                             String fhirPatientIdentifierSystem, String manufacturer, boolean parametricMaps,
                             boolean sideBySide, boolean rejectSuperseded, Coded rejectionTitle) {

    public ReportSettings(int seriesNumberBase, boolean positiveOnly, int maxSecondaryCaptures,
                          String fhirPatientIdentifierSystem, String manufacturer, boolean parametricMaps,
                          boolean sideBySide) {
        this(seriesNumberBase, positiveOnly, maxSecondaryCaptures, fhirPatientIdentifierSystem, manufacturer,
                parametricMaps, sideBySide, false, DicomObjectWriter.REJECTED_FOR_QUALITY_REASONS);
    }

    public static ReportSettings defaults() {
        return new ReportSettings(900, true, 4, "urn:cxr-gateway:patient-id", "cxr-gateway", true, false);
    }

    public static ReportSettings from(ReportConfig c) {
        ReportConfig.RejectionTitle t = c.rejectionTitle();
        return new ReportSettings(c.seriesNumberBase(), c.positiveOnly(), c.maxSecondaryCaptures(),
                c.fhirPatientIdentifierSystem(), c.manufacturer(), c.parametricMaps(), c.sideBySide(),
                c.rejectSuperseded(), new Coded(t.value(), t.scheme(), t.meaning()));
    }

    /** The same settings with IOCM rejection notes for superseded and retracted objects on or off. */
    public ReportSettings withRejectSuperseded(boolean on) {
        return new ReportSettings(seriesNumberBase, positiveOnly, maxSecondaryCaptures, fhirPatientIdentifierSystem,
                manufacturer, parametricMaps, sideBySide, on, rejectionTitle);
    }

    /** The same settings with another cap on the findings that get explanation objects. */
    public ReportSettings withMaxSecondaryCaptures(int max) {
        return new ReportSettings(seriesNumberBase, positiveOnly, max, fhirPatientIdentifierSystem, manufacturer,
                parametricMaps, sideBySide, rejectSuperseded, rejectionTitle);
    }

    public ReportSettings withParametricMaps(boolean on) {
        return new ReportSettings(seriesNumberBase, positiveOnly, maxSecondaryCaptures, fhirPatientIdentifierSystem,
                manufacturer, on, sideBySide, rejectSuperseded, rejectionTitle);
    }

    public ReportSettings withSideBySide(boolean on) {
        return new ReportSettings(seriesNumberBase, positiveOnly, maxSecondaryCaptures, fhirPatientIdentifierSystem,
                manufacturer, parametricMaps, on, rejectSuperseded, rejectionTitle);
    }
}
