package org.cxrgateway.ingest;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.TreeSet;
import org.cxrgateway.dicom.DicomInstance;
import org.cxrgateway.schema.v1.Code;
import org.cxrgateway.schema.v1.SourceImage;
import org.cxrgateway.schema.v1.StudyInfo;
import org.cxrgateway.schema.v1.WorkingImage;

/** Pieces of a StudyJob built from stored instances. */
public final class StudyJobBuilder {

    private StudyJobBuilder() {
    }

    /**
     * Deterministic job id: SHA-256 over the study UID and the sorted SOP Instance UIDs of the job
     * (eligible and skipped), first 32 hex digits. A re-publication after a crash yields the same id,
     * so consumers can dedupe on it.
     */
    public static String jobId(String studyUid, List<String> instanceUids) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(studyUid.getBytes(StandardCharsets.US_ASCII));
            for (String uid : new TreeSet<>(instanceUids)) {
                md.update((byte) '\n');
                md.update(uid.getBytes(StandardCharsets.US_ASCII));
            }
            return HexFormat.of().formatHex(md.digest()).substring(0, 32);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    public static StudyInfo studyInfo(DicomInstance in) {
        StudyInfo.Builder b = StudyInfo.newBuilder()
                .setStudyInstanceUid(in.studyInstanceUid())
                .setStudyId(in.studyId())
                .setAccessionNumber(in.accessionNumber())
                .setStudyDate(in.studyDate())
                .setStudyTime(in.studyTime())
                .setStudyDescription(in.studyDescription())
                .setReferringPhysicianName(in.referringPhysicianName())
                .setPatientId(in.patientId())
                .setIssuerOfPatientId(in.issuerOfPatientId())
                .setPatientName(in.patientName())
                .setPatientBirthDate(in.patientBirthDate())
                .setPatientSex(in.patientSex());
        if (in.procedureCodeValue() != null && in.procedureCodingScheme() != null) {
            b.setProcedureCode(Code.newBuilder().setValue(in.procedureCodeValue())
                    .setScheme(in.procedureCodingScheme())
                    .setMeaning(in.procedureCodeMeaning() == null ? "" : in.procedureCodeMeaning()).build());
        }
        return b.build();
    }

    public static SourceImage sourceImage(DicomInstance in, WorkingImage image) {
        return SourceImage.newBuilder()
                .setSopInstanceUid(in.sopInstanceUid())
                .setSopClassUid(in.sopClassUid())
                .setSeriesInstanceUid(in.seriesInstanceUid() == null ? "" : in.seriesInstanceUid())
                .setSeriesNumber(in.seriesNumber())
                .setInstanceNumber(in.instanceNumber())
                .setModality(in.modality())
                .setViewPosition(in.viewPosition())
                .setImageLaterality(in.imageLaterality())
                .setBodyPartExamined(in.bodyPartExamined())
                .setSourceRows(in.rows())
                .setSourceColumns(in.columns())
                .setImage(image)
                .build();
    }
}
