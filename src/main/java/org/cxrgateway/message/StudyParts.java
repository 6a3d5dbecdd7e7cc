package org.cxrgateway.message;

import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.SkippedInstance;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * A study travels as parts so that no message outgrows the broker's limit, whatever the study's size: a job
 * is split into one part per image (a working image is at most cxr.assembly.max-payload-bytes, so a part is
 * bounded whatever the number or size of the source images), all with the study's jobId and key, so they stay
 * in order on one partition and workers micro-batch them with other studies' parts as before. Delivery holds
 * the parts' results durably until it has all of them and {@link #merge merges} them into the one result an
 * SR covering the whole study is built from.
 */
public final class StudyParts {

    /**
     * Skipped instances listed in part 0 at most (each is counted in metrics and the audit line already);
     * bounds that part however many non-chest instances a study holds.
     */
    public static final int MAX_SKIPPED_LISTED = 1000;

    private StudyParts() {
    }

    /** The parts of a whole-study job: one image each (a job without images is one part). */
    public static List<StudyJob> split(StudyJob job) {
        List<SourceImage> images = job.getImages();
        int count = Math.max(1, images.size());
        List<SkippedInstance> skipped = job.getSkipped();
        List<StudyJob> parts = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            parts.add(StudyJob.newBuilder(job)
                    .setSchemaVersion(MessageCodec.SCHEMA_VERSION)
                    .setPartIndex(i).setPartCount(count)
                    .setImages(images.isEmpty() ? List.of() : List.of(images.get(i)))
                    .setSkipped(i == 0 ? skipped.subList(0, Math.min(skipped.size(), MAX_SKIPPED_LISTED)) : List.of())
                    .build());
        }
        return parts;
    }

    /**
     * The whole-study result from all parts of one job (any order, each index once): images and skipped
     * instances in part order, engine time summed, the largest batch, the latest creation time.
     *
     * @throws IllegalArgumentException when the parts are not exactly the parts of one job
     */
    public static StudyResult merge(List<StudyResult> parts) {
        if (parts.isEmpty()) {
            throw new IllegalArgumentException("no parts");
        }
        List<StudyResult> sorted = new ArrayList<>(parts);
        sorted.sort(Comparator.comparingInt(StudyResult::getPartIndex));
        StudyResult first = sorted.get(0);
        int count = first.getPartCount();
        if (sorted.size() != count) {
            throw new IllegalArgumentException(sorted.size() + " parts of " + count);
        }
        List<ImageResult> images = new ArrayList<>();
        List<SkippedInstance> skipped = new ArrayList<>();
        double ms = 0;
        int batch = 0;
        long created = 0;
        for (int i = 0; i < count; i++) {
            StudyResult p = sorted.get(i);
            if (p.getPartIndex() != i || p.getPartCount() != count || !p.getJobId().equals(first.getJobId())
                    || p.getPreview() != first.getPreview()) {
                throw new IllegalArgumentException("part " + p.getPartIndex() + " of " + p.getPartCount() + " of job "
                        + p.getJobId() + (p.getPreview() ? " (preview)" : "") + " does not belong with part " + i + " of " + count
                        + " of job " + first.getJobId() + (first.getPreview() ? " (preview)" : ""));
            }
            images.addAll(p.getImages());
            skipped.addAll(p.getSkipped());
            ms += p.getInferenceMs();
            batch = Math.max(batch, p.getBatchSize());
            created = Math.max(created, p.getCreatedAtEpochMs());
        }
        return StudyResult.newBuilder(first).setPartIndex(0).setPartCount(1).setImages(images).setSkipped(skipped)
                .setInferenceMs(ms).setBatchSize(batch).setCreatedAtEpochMs(created).build();
    }
}
