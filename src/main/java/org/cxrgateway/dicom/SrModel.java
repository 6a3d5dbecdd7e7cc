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

    /** One TID 1501 measurement group: one model output on one image. */
    public record FindingGroup(String trackingId, String trackingUid, Coded finding, Coded evaluation,
                               double probability, double threshold, String algorithmName, String algorithmVersion,
                               InstanceRef image) {
    }

    /** A whole TID 1500 measurement report. {@code disclaimer} is non-null for non-diagnostic models. */
    public record MeasurementReport(Header header, Equipment equipment, Coded procedureReported,
                                    List<InstanceRef> imageLibrary, List<FindingGroup> groups, String disclaimer) {
    }

    /** An RGB secondary capture derived from one source image. */
    public record SecondaryCapture(Header header, Equipment equipment, InstanceRef source, int width, int height,
                                   byte[] rgbPixels, String derivationDescription) {
    }
}
