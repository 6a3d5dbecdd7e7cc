package org.cxrgateway.ingest;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.TreeSet;
import org.cxrgateway.dicom.DicomFiles;
import org.cxrgateway.dicom.DicomInstance;
import org.cxrgateway.schema.v2.Code;
import org.cxrgateway.schema.v2.SkippedInstance;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.WorkingImage;

/**
 * The one path from instance files to a study job, for the study assembler (spooled files) and the
 * offline {@code score} command (files given): {@link #read} parses each file once and decodes it only
 * when it is eligible; a builder per study collects the outcomes, every file that is not an image of the
 * job being a skipped instance with its reason, and the job id covers all of them.
 */
public final class StudyJobBuilder {

    /**
     * What one file became: an image of the job ({@code image} set), or not, with {@code skipReason}
     * ({@link Eligibility#UNREADABLE}: {@code instance} is null; {@link Eligibility#UNDECODABLE}; or why it
     * is not eligible) and the {@code error} behind it, if any.
     */
    public record FileOutcome(Path file, DicomInstance instance, SourceImage image, String skipReason, Exception error) {
    }

    private final List<SourceImage> images = new ArrayList<>();
    private final List<SkippedInstance> skipped = new ArrayList<>();
    private DicomInstance firstEligible;

    /** Reads one file: parsed once, decoded to a working image only when eligible. */
    public static FileOutcome read(Path file, WorkingImageDecoder decoder) {
        return read(file, decoder, true);
    }

    /**
     * Reads one file as {@link #read(Path, WorkingImageDecoder)} does, but an eligible file is decoded only when
     * {@code roomForImage}; otherwise it is skipped as {@link Eligibility#TOO_MANY_IMAGES}.
     */
    public static FileOutcome read(Path file, WorkingImageDecoder decoder, boolean roomForImage) {
        DicomFiles.Parsed parsed;
        try {
            parsed = DicomFiles.parse(file);
        } catch (IOException | RuntimeException e) {
            return new FileOutcome(file, null, null, Eligibility.UNREADABLE, e);
        }
        DicomInstance in = parsed.instance();
        Optional<String> reason = Eligibility.reasonToSkip(in);
        if (reason.isPresent()) {
            return new FileOutcome(file, in, null, reason.get(), null);
        }
        if (!roomForImage) {
            return new FileOutcome(file, in, null, Eligibility.TOO_MANY_IMAGES, null);
        }
        try {
            return new FileOutcome(file, in, sourceImage(in, decoder.decode(parsed.frame())), null, null);
        } catch (IOException | RuntimeException e) {
            return new FileOutcome(file, in, null, Eligibility.UNDECODABLE, e);
        }
    }

    /**
     * Adds a file of this study.
     *
     * @param sopInstanceUid the instance the file holds: for an unreadable file, what it is known as (the
     *                       spool names files after it)
     */
    public void add(String sopInstanceUid, FileOutcome outcome) {
        if (outcome.image() != null) {
            images.add(outcome.image());
            if (firstEligible == null) {
                firstEligible = outcome.instance();
            }
        } else {
            skipped.add(SkippedInstance.newBuilder().setSopInstanceUid(sopInstanceUid)
                    .setReason(outcome.skipReason()).build());
        }
    }

    public List<SourceImage> images() {
        return images;
    }

    public List<SkippedInstance> skipped() {
        return skipped;
    }

    /** The SOP Instance UIDs of the images. */
    public List<String> eligible() {
        return images.stream().map(SourceImage::getSopInstanceUid).toList();
    }

    /**
     * The job (id over every instance added, eligible or skipped; the study as the first eligible instance
     * describes it; created now); revision, update and reception time are the caller's. Needs an image.
     */
    public StudyJob.Builder job() {
        if (firstEligible == null) {
            throw new IllegalStateException("no eligible image: no job");
        }
        List<String> all = new ArrayList<>(eligible());
        skipped.forEach(sk -> all.add(sk.getSopInstanceUid()));
        return StudyJob.newBuilder()
                .setJobId(jobId(firstEligible.studyInstanceUid(), all))
                .setCreatedAtEpochMs(System.currentTimeMillis())
                .setStudy(studyInfo(firstEligible))
                .setImages(images)
                .setSkipped(skipped);
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

    private static StudyInfo studyInfo(DicomInstance in) {
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

    private static SourceImage sourceImage(DicomInstance in, WorkingImage image) {
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
