package org.cxrgateway.dicom;

/**
 * The attributes of a stored instance that ingest uses, as plain Java values (null when absent).
 * Strings are trimmed; multi-valued attributes give their first value.
 */
public record DicomInstance(
        String sopClassUid,
        String sopInstanceUid,
        String transferSyntaxUid,
        String studyInstanceUid,
        String studyId,
        String accessionNumber,
        String studyDate,
        String studyTime,
        String studyDescription,
        String referringPhysicianName,
        String patientId,
        String issuerOfPatientId,
        String patientName,
        String patientBirthDate,
        String patientSex,
        String procedureCodeValue,
        String procedureCodingScheme,
        String procedureCodeMeaning,
        String seriesInstanceUid,
        String seriesNumber,
        String seriesDescription,
        String protocolName,
        String instanceNumber,
        String modality,
        String viewPosition,
        String imageLaterality,
        String bodyPartExamined,
        String photometricInterpretation,
        int rows,
        int columns,
        int samplesPerPixel,
        int bitsAllocated,
        int bitsStored,
        int pixelRepresentation,
        boolean hasPixelData) {
}
