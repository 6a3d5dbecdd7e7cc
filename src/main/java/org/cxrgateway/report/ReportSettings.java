package org.cxrgateway.report;

/** The values of {@link ReportConfig}, as a plain record so that builders can run without CDI. */
public record ReportSettings(int seriesNumberBase, boolean positiveOnly, int maxSecondaryCaptures,
                             String fhirPatientIdentifierSystem, String manufacturer, boolean parametricMaps,
                             boolean sideBySide) {

    public static ReportSettings defaults() {
        return new ReportSettings(900, true, 4, "urn:cxr-gateway:patient-id", "cxr-gateway", true, false);
    }

    public static ReportSettings from(ReportConfig c) {
        return new ReportSettings(c.seriesNumberBase(), c.positiveOnly(), c.maxSecondaryCaptures(),
                c.fhirPatientIdentifierSystem(), c.manufacturer(), c.parametricMaps(), c.sideBySide());
    }

    /** The same settings with another cap on the findings that get explanation objects. */
    public ReportSettings withMaxSecondaryCaptures(int max) {
        return new ReportSettings(seriesNumberBase, positiveOnly, max, fhirPatientIdentifierSystem, manufacturer,
                parametricMaps, sideBySide);
    }

    public ReportSettings withParametricMaps(boolean on) {
        return new ReportSettings(seriesNumberBase, positiveOnly, maxSecondaryCaptures, fhirPatientIdentifierSystem,
                manufacturer, on, sideBySide);
    }

    public ReportSettings withSideBySide(boolean on) {
        return new ReportSettings(seriesNumberBase, positiveOnly, maxSecondaryCaptures, fhirPatientIdentifierSystem,
                manufacturer, parametricMaps, on);
    }
}
