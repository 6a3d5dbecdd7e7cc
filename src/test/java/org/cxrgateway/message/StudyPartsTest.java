package org.cxrgateway.message;

import org.cxrgateway.schema.v2.Code;
import org.cxrgateway.schema.v2.Finding;
import org.cxrgateway.schema.v2.GuidedMap;
import org.cxrgateway.schema.v2.ImageResult;
import org.cxrgateway.schema.v2.ModelRun;
import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.SkippedInstance;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.StudyResult;
import org.cxrgateway.schema.v2.WorkingImage;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bounded messages: a study travels one image per message, so the largest message does not grow with the
 * number of images, and with a working image at the payload cap (cxr.assembly.max-payload-bytes, 950000) every
 * job and result part stays within 1 MiB. The worst case is built for real: 200 images, each at the cap with
 * incompressible pixels, 64-character UIDs, 2,000 skipped instances.
 */
class StudyPartsTest {

    static final int MIB = 1 << 20;
    static final int CAP = 950_000;
    static final String UID = "1.2.826.0.1.3680043.10.1234.5678.9012.3456.7890.1234.5678.9012.34"; // 64 chars

    static byte[] noise(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    /** A working image whose payload is exactly the cap: incompressible bytes, as DEFLATE could leave them. */
    static WorkingImage capped(byte[] px) {
        return WorkingImage.newBuilder().setWidth(1000).setHeight(800).setBitsPerPixel(8).setEncoding(PixelEncoding.RAW)
                .setPixels(ByteBuffer.wrap(px)).build();
    }

    static StudyInfo info() {
        return StudyInfo.newBuilder().setStudyInstanceUid(UID).setPatientId("P".repeat(64)).setPatientName("N".repeat(64))
                .setAccessionNumber("A".repeat(16)).setStudyDescription("D".repeat(64)).build();
    }

    static StudyJob job(int images, byte[] px) {
        List<SourceImage> list = new ArrayList<>();
        for (int i = 0; i < images; i++) {
            list.add(SourceImage.newBuilder().setSopInstanceUid(UID.substring(0, 58) + "." + (100000 + i))
                    .setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1").setSeriesInstanceUid(UID).setModality("DX")
                    .setViewPosition("PA").setSourceRows(3000).setSourceColumns(3000).setImage(capped(px)).build());
        }
        List<SkippedInstance> skipped = new ArrayList<>();
        for (int i = 0; i < 2000; i++) {
            skipped.add(new SkippedInstance(UID.substring(0, 58) + "." + (900000 + i), "LATERAL_VIEW"));
        }
        return StudyJob.newBuilder().setJobId("j".repeat(64)).setCreatedAtEpochMs(1).setStudy(info())
                .setImages(list).setSkipped(skipped).build();
    }

    @Test
    void everyJobPartOfA200ImageStudyIsWithinOneMiBAndItsSizeDoesNotGrowWithTheStudy() throws Exception {
        byte[] px = noise(CAP, 1);
        int largest200 = 0;
        List<StudyJob> parts = StudyParts.split(job(200, px));
        assertEquals(200, parts.size());
        for (StudyJob p : parts) {
            byte[] bytes = MessageCodec.encode(p);
            largest200 = Math.max(largest200, bytes.length);
            assertEquals(1, p.getImages().size());
            assertEquals(200, p.getPartCount());
        }
        StudyJob back = MessageCodec.decodeJob(MessageCodec.encode(parts.get(199)));
        assertEquals(199, back.getPartIndex());
        assertEquals(StudyParts.MAX_SKIPPED_LISTED, parts.get(0).getSkipped().size(), "part 0 lists the skipped, bounded");
        assertTrue(parts.get(1).getSkipped().isEmpty());
        int largest2 = 0;
        for (StudyJob p : StudyParts.split(job(2, px))) {
            largest2 = Math.max(largest2, MessageCodec.encode(p).length);
        }
        System.out.printf("largest job part: 200-image study %d bytes, 2-image study %d bytes (limit %d)%n",
                largest200, largest2, MIB - MessageBudget.RECORD_OVERHEAD);
        assertTrue(largest200 <= MIB - MessageBudget.RECORD_OVERHEAD, "job part of " + largest200 + " bytes");
        // only the varints of partIndex and partCount grow (1 byte per 7 bits)
        assertTrue(largest200 - largest2 <= 4, "the largest part does not depend on the number of images: "
                + largest2 + " vs " + largest200);
        assertEquals(1, StudyParts.split(StudyJob.newBuilder(job(0, px)).build()).size(), "no image: one part");
    }

    static Finding finding(int k, float p, boolean guided) {
        Finding.Builder b = Finding.newBuilder().setLabel("Finding " + k).setCode(new Code("C" + k, "99CXR", "finding " + k))
                .setProbability(p).setThreshold(0.5f).setPositive(true)
                .setActivation(org.cxrgateway.schema.v2.ActivationMap.newBuilder().setWidth(7).setHeight(7).setRegionX(0)
                        .setRegionY(0).setRegionWidth(1000).setRegionHeight(800)
                        .setValues(new ArrayList<>(Collections.nCopies(49, 1.5f))).build());
        if (guided) {
            // the worst case: 224x224 values that do not deflate at all
            b.setGuided(GuidedMap.newBuilder().setWidth(224).setHeight(224).setRegionX(0).setRegionY(0).setRegionWidth(800)
                    .setRegionHeight(800).setMaxAbs(1f).setValues(ByteBuffer.wrap(noise(224 * 224 + 64, k))).build());
        }
        return b.build();
    }

    static StudyResult resultPart(byte[] px, int guidedMaps) {
        List<Finding> chest = new ArrayList<>();
        for (int k = 0; k < 14; k++) {
            chest.add(finding(k, 0.5f + k / 100f, k >= 14 - guidedMaps));
        }
        ModelRun run = ModelRun.newBuilder().setModelId("chest14").setModelVersion("1.0.0").setDiagnostic(false)
                .setIntendedUse("x".repeat(200)).setEngine("cpu").setFindings(chest).build();
        ImageResult image = ImageResult.newBuilder().setSopInstanceUid(UID).setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1")
                .setSeriesInstanceUid(UID).setImage(capped(px)).setRuns(List.of(run)).build();
        return StudyResult.newBuilder().setJobId("j".repeat(64)).setPartIndex(7).setPartCount(200).setCreatedAtEpochMs(1)
                .setStudy(info()).setImages(List.of(image)).setInferenceMs(1).setBatchSize(8).build();
    }

    /**
     * A worker publishes a preview (the result before its guided maps) only when the full result is sure to fit
     * whole: a full result that had to leave out a promised map would no longer match the SRs sent from the preview.
     */
    @Test
    void aPreviewIsPublishedOnlyWhenItsFullResultIsSureToFitWhole() {
        int n = 224 * 224;
        // the worst map the worker can make: white noise, quantised and deflated by the worker's own encoder
        java.util.Random random = new java.util.Random(7);
        float[] map = new float[n];
        for (int i = 0; i < n; i++) {
            map[i] = random.nextFloat() * 2 - 1;
        }
        byte[] worst = org.cxrgateway.xai.GuidedGradCam.encode(map).deflated();
        assertTrue(worst.length > n && worst.length + 64 <= MessageBudget.guidedMapBound(224),
                "incompressible values deflate to " + worst.length + " bytes, within the bound " + MessageBudget.guidedMapBound(224));
        StudyResult full = resultPart(noise(800_000, 2), 4);
        StudyResult preview = org.cxrgateway.report.TestResults.preview(full);
        var encoded = MessageBudget.previewFits(preview, 224, MIB);
        assertTrue(encoded.isPresent(), "a typical part with 4 guided maps to come");
        assertTrue(MessageCodec.encode(full).length - encoded.get().length <= 4 * MessageBudget.guidedMapBound(224));
        // at the working image's cap the full result must leave maps out (see below): then no preview
        assertTrue(MessageBudget.fit(resultPart(noise(CAP, 2), 4), MIB).droppedGuided() > 0);
        assertTrue(MessageBudget.previewFits(org.cxrgateway.report.TestResults.preview(resultPart(noise(CAP, 2), 4)), 224, MIB).isEmpty());
    }

    @Test
    void aResultPartIsFittedWithinOneMiBByLeavingOutTheLeastProbableGuidedMaps() {
        // a typical working image (a 1024-px radiograph deflates to well under 800 kB) keeps the default's 4 guided
        // maps per model (cxr.report.max-secondary-captures) even when they do not deflate at all
        MessageBudget.Fitted usual = MessageBudget.fit(resultPart(noise(800_000, 2), 4), MIB);
        assertEquals(0, usual.droppedGuided());
        assertTrue(usual.encoded().length <= MIB - MessageBudget.RECORD_OVERHEAD, usual.encoded().length + " bytes");
        // the worst case, an incompressible working image at the cap: the least probable findings lose their maps,
        // the most probable keeps its map, and every score stays
        MessageBudget.Fitted atCap = MessageBudget.fit(resultPart(noise(CAP, 2), 4), MIB);
        assertTrue(atCap.encoded().length <= MIB - MessageBudget.RECORD_OVERHEAD, atCap.encoded().length + " bytes");
        assertTrue(atCap.droppedGuided() < 4, "dropped " + atCap.droppedGuided());
        assertTrue(atCap.result().getImages().get(0).getRuns().get(0).getFindings().get(13).getGuided() != null);
        // more than fit: the least probable findings lose theirs, the rest and every score stay
        MessageBudget.Fitted fitted = MessageBudget.fit(resultPart(noise(800_000, 2), 10), MIB);
        assertTrue(fitted.droppedGuided() > 0 && fitted.droppedGuided() < 10, "dropped " + fitted.droppedGuided());
        assertTrue(fitted.encoded().length <= MIB - MessageBudget.RECORD_OVERHEAD, fitted.encoded().length + " bytes");
        List<Finding> f = fitted.result().getImages().get(0).getRuns().get(0).getFindings();
        assertEquals(14, f.size());
        assertTrue(f.get(13).getGuided() != null, "the most probable finding keeps its guided map");
        assertTrue(f.get(4).getGuided() == null, "the least probable one with a map lost it");
        System.out.printf("result part: %d bytes with an 800 kB working image and 4 incompressible guided maps; "
                + "%d bytes with an incompressible one at the cap (%d of 4 maps left out)%n",
                usual.encoded().length, atCap.encoded().length, atCap.droppedGuided());
    }

    @Test
    void mergeRestoresTheWholeStudyInPartOrderAndRefusesStrangers() {
        byte[] px = noise(1000, 3);
        List<StudyResult> parts = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            StudyResult r = resultPart(px, 0);
            r.setPartIndex(i);
            r.setPartCount(3);
            r.getImages().get(0).setSopInstanceUid("1.2." + i);
            r.setInferenceMs(10);
            r.setCreatedAtEpochMs(100 + i);
            // as a worker copies them from the job: part 0 lists the skipped instances, the others none
            r.setSkipped(i == 0 ? List.of(SkippedInstance.newBuilder().setSopInstanceUid("1.2.9").setReason("LATERAL_VIEW").build())
                    : List.of());
            parts.add(r);
        }
        Collections.reverse(parts);
        StudyResult whole = StudyParts.merge(parts);
        assertEquals(List.of("1.2.0", "1.2.1", "1.2.2"), whole.getImages().stream().map(ImageResult::getSopInstanceUid).toList());
        assertEquals(1, whole.getPartCount());
        assertEquals(List.of("1.2.9"), whole.getSkipped().stream().map(SkippedInstance::getSopInstanceUid).toList());
        assertEquals(30.0, whole.getInferenceMs());
        assertEquals(102, whole.getCreatedAtEpochMs());
        assertThrows(IllegalArgumentException.class, () -> StudyParts.merge(parts.subList(0, 2)));
        StudyResult stranger = StudyResult.newBuilder(parts.get(0)).setJobId("other").build();
        assertThrows(IllegalArgumentException.class, () -> StudyParts.merge(List.of(stranger, parts.get(1), parts.get(2))));
    }
}
