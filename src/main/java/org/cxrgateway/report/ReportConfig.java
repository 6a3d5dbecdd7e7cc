package org.cxrgateway.report;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

/** How results are rendered as DICOM and FHIR. */
@ConfigMapping(prefix = "cxr.report")
public interface ReportConfig {

    /** Series Number of the first SR series; model run k uses base + 10k (SR) and base + 10k + 1 (heatmap SCs). */
    @WithDefault("900")
    int seriesNumberBase();

    /** Make a heatmap Secondary Capture only for positive findings (false: for every finding that has a map). */
    @WithDefault("true")
    boolean positiveOnly();

    /** At most this many heatmap SCs per study (highest probability first), so the PACS is not flooded; 0 = none. */
    @WithDefault("4")
    int maxSecondaryCaptures();

    /** FHIR identifier system for PatientID when the source has no Issuer of Patient ID. */
    @WithDefault("urn:cxr-gateway:patient-id")
    String fhirPatientIdentifierSystem();

    /** Manufacturer written into Enhanced General / Contributing Equipment. */
    @WithDefault("cxr-gateway")
    String manufacturer();
}
