package org.cxrgateway.report;

/** The values of {@link ReportConfig}, as a plain record so that builders can run without CDI. */
public record ReportSettings(int seriesNumberBase, boolean positiveOnly, int maxSecondaryCaptures,
                             String fhirPatientIdentifierSystem, String manufacturer) {

    public static ReportSettings defaults() {
        return new ReportSettings(900, true, 4, "urn:cxr-gateway:patient-id", "cxr-gateway");
    }

    public static ReportSettings from(ReportConfig c) {
        return new ReportSettings(c.seriesNumberBase(), c.positiveOnly(), c.maxSecondaryCaptures(),
                c.fhirPatientIdentifierSystem(), c.manufacturer());
    }
}
