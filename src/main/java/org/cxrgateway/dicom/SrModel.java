package org.cxrgateway.dicom;

import java.util.List;

/**
 * Toolkit-neutral description of the objects we write, so that callers outside this package never
 * see a PixelMed type. Every string that is optional in DICOM (type 2) may be null here.
 */
public final class SrModel {
    private SrModel() {
    }

    /** A coded concept: code value, coding scheme designator, code meaning. */
    public record Coded(String value, String scheme, String meaning) {
    }

    /** A reference to a composite instance, with its series for the evidence sequence. */
    public record InstanceRef(String sopClassUid, String sopInstanceUid, String seriesInstanceUid) {
    }

    /** Patient and study attributes copied from the source, plus the identity of the new instance. */
    public record Header(
            String patientName, String patientId, String issuerOfPatientId, String patientBirthDate, String patientSex,
            String studyInstanceUid, String studyId, String studyDate, String studyTime, String accessionNumber,
            String referringPhysicianName, String studyDescription,
            String seriesInstanceUid, int seriesNumber, String seriesDescription,
            String sopInstanceUid, int instanceNumber, String contentDate, String contentTime) {
    }

    /** The software that made the object: Enhanced General Equipment and Contributing Equipment. */
    public record Equipment(String manufacturer, String modelName, String softwareVersion, String deviceUid,
                            String deviceSerialNumber) {
    }

    /** An object derived for a finding (a map or its picture), with the concept that says what it shows. */
    public record Explanation(Coded concept, InstanceRef object) {
    }

    /**
     * One TID 1501 measurement group: one model output on one image. {@code explanations} are the maps
     * (Parametric Map, Secondary Captures) derived for this finding, referenced from the group as IHE AIR
     * foresees; empty when none was made.
     */
    public record FindingGroup(String trackingId, String trackingUid, Coded finding, Coded evaluation,
                               double probability, double threshold, String algorithmName, String algorithmVersion,
                               InstanceRef image, List<Explanation> explanations) {
        public FindingGroup {
            explanations = explanations == null ? List.of() : List.copyOf(explanations);
        }
    }

    /**
     * A whole TID 1500 measurement report. {@code disclaimer} is non-null for non-diagnostic models.
     * {@code predecessors} are the SRs this one replaces (Predecessor Documents Sequence, PS3.3 C.17.2) and
     * {@code statement} says so in the content (or that the results are retracted); empty and null for a first report.
     */
    public record MeasurementReport(Header header, Equipment equipment, Coded procedureReported,
                                    List<InstanceRef> imageLibrary, List<FindingGroup> groups, String disclaimer,
                                    List<InstanceRef> predecessors, String statement) {
        public MeasurementReport {
            predecessors = predecessors == null ? List.of() : List.copyOf(predecessors);
        }

        public MeasurementReport(Header header, Equipment equipment, Coded procedureReported,
                                 List<InstanceRef> imageLibrary, List<FindingGroup> groups, String disclaimer) {
            this(header, equipment, procedureReported, imageLibrary, groups, disclaimer, List.of(), null);
        }
    }

    /**
     * A Key Object Selection document (PS3.3 A.35.4, TID 2010) whose title says why the objects are selected,
     * e.g. an IHE IOCM rejection note: (113001, DCM, "Rejected for Quality Reasons") and the rejected instances.
     */
    public record KeyObjectSelection(Header header, Equipment equipment, Coded title, String description,
                                     List<InstanceRef> objects) {
        public KeyObjectSelection {
            objects = List.copyOf(objects);
        }
    }

    /**
     * A secondary capture derived from one source image: 8-bit RGB when {@code samplesPerPixel} is 3
     * (pixel by pixel R, G, B), 8-bit MONOCHROME2 when it is 1.
     */
    public record SecondaryCapture(Header header, Equipment equipment, InstanceRef source, int width, int height,
                                   int samplesPerPixel, byte[] pixels, String derivationDescription) {
    }

    /**
     * One frame of a Parametric Map: row-major float values and how they map to real-world values.
     * {@code quantity} is the concept from CID 217 "Visual Explanation" (or another CID 7180 concept);
     * values are stored as the real-world values themselves (slope 1, intercept 0).
     */
    public record MapFrame(Coded quantity, Coded units, float[] values, String label, String explanation) {
    }

    /**
     * A Parametric Map derived from one source image. The map's grid covers the whole source image with
     * {@code width x height} samples (a subsampling of the source grid, stated in the derivation description).
     * {@code derivation} codes the method (CID 217). The radiograph has no patient coordinate system, so the
     * map's frame of reference is the source's detector plane with the source pixel as unit:
     * {@code pixelSpacing} (row, column) is the number of source pixels per map pixel.
     */
    public record ParametricMap(Header header, Equipment equipment, InstanceRef source, int width, int height,
                                List<MapFrame> frames, Coded derivation, String contentLabel, String contentDescription,
                                String derivationDescription, boolean diagnostic, String frameOfReferenceUid,
                                double[] pixelSpacing) {
        public ParametricMap {
            frames = List.copyOf(frames);
        }
    }
}
