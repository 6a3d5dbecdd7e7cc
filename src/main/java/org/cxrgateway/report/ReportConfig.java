package org.cxrgateway.report;

import io.smallrye.config.ConfigMapping;
import io.smallrye.config.WithDefault;

/** How results are rendered as DICOM and FHIR. */
@ConfigMapping(prefix = "cxr.report")
public interface ReportConfig {

    /**
     * Series Number of the first SR series; model run k uses base + 10k (SR), base + 10k + 1 (heatmap SCs,
     * colour Grad-CAM and grayscale guided Grad-CAM) and base + 10k + 2 (Parametric Maps).
     */
    @WithDefault("900")
    int seriesNumberBase();

    /** Make heatmaps and Parametric Maps only for positive findings (false: for every finding that has a map). */
    @WithDefault("true")
    boolean positiveOnly();

    /**
     * At most this many findings per study get explanation objects (highest probability first), so the PACS is
     * not flooded: each gets a colour Grad-CAM SC, a guided Grad-CAM SC when the package ships the guided graph,
     * and a Parametric Map unless {@link #parametricMaps()} is off; 0 = none.
     */
    @WithDefault("4")
    int maxSecondaryCaptures();

    /** Write a Parametric Map (float Grad-CAM, and guided Grad-CAM when present) per such finding; OHIF 3.9+ overlays it. */
    @WithDefault("true")
    boolean parametricMaps();

    /** Colour Grad-CAM SCs show the original and the overlay side by side (twice as wide) instead of the overlay alone. */
    @WithDefault("false")
    boolean sideBySide();

    /** FHIR identifier system for PatientID when the source has no Issuer of Patient ID. */
    @WithDefault("urn:cxr-gateway:patient-id")
    String fhirPatientIdentifierSystem();

    /** Manufacturer written into Enhanced General / Contributing Equipment. */
    @WithDefault("cxr-gateway")
    String manufacturer();

    /**
     * With a result that supersedes an earlier one, and with a retraction, also send an IHE IOCM rejection note
     * (Key Object Selection titled {@link #rejectionTitle()}) listing the superseded SR, SC and PM instances, for
     * archives that act on it (dcm4chee hides them; Orthanc stores the note and does nothing). Default false.
     */
    @WithDefault("false")
    boolean rejectSuperseded();

    /** The rejection note's title (CID 7011); default (113001, DCM, "Rejected for Quality Reasons"). */
    RejectionTitle rejectionTitle();

    interface RejectionTitle {
        @WithDefault("113001")
        String value();

        @WithDefault("DCM")
        String scheme();

        @WithDefault("Rejected for Quality Reasons")
        String meaning();
    }
}
