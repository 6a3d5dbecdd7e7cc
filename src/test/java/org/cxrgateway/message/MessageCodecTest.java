package org.cxrgateway.message;

import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.SourceImage;
import org.cxrgateway.schema.v2.StudyInfo;
import org.cxrgateway.schema.v2.StudyJob;
import org.cxrgateway.schema.v2.WorkingImage;
import org.apache.avro.Schema;
import org.apache.avro.message.BinaryMessageEncoder;
import org.apache.avro.specific.SpecificData;
import org.cxrgateway.schema.v2.StudyResult;
import org.junit.jupiter.api.Test;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MessageCodecTest {

    static StudyJob job(int schemaVersion) {
        byte[] pixels = {1, 2, 3, 4, 5, 6};
        return StudyJob.newBuilder()
                .setSchemaVersion(schemaVersion)
                .setJobId("j1")
                .setCreatedAtEpochMs(1L)
                .setStudy(StudyInfo.newBuilder().setStudyInstanceUid("1.2.3").setPatientId("P1").build())
                .setImages(List.of(SourceImage.newBuilder()
                        .setSopInstanceUid("1.2.3.4").setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1")
                        .setSeriesInstanceUid("1.2.3.5").setModality("DX").setSourceRows(2).setSourceColumns(3)
                        .setImage(WorkingImage.newBuilder().setWidth(3).setHeight(2).setBitsPerPixel(8)
                                .setEncoding(PixelEncoding.RAW).setPixels(ByteBuffer.wrap(pixels)).build())
                        .build()))
                .setSkipped(List.of())
                .build();
    }

    @Test
    void roundTrip() throws Exception {
        StudyJob decoded = MessageCodec.decodeJob(MessageCodec.encode(job(2)));
        assertEquals("1.2.3", decoded.getStudy().getStudyInstanceUid());
        byte[] pixels = new byte[decoded.getImages().get(0).getImage().getPixels().remaining()];
        decoded.getImages().get(0).getImage().getPixels().get(pixels);
        assertArrayEquals(new byte[]{1, 2, 3, 4, 5, 6}, pixels);
    }

    @Test
    void garbageAndForeignVersionsArePoison() {
        var garbage = assertThrows(PoisonMessageException.class,
                () -> MessageCodec.decodeJob("not avro".getBytes(StandardCharsets.UTF_8)));
        assertTrue(garbage.getMessage().contains("StudyJob"), garbage.getMessage());
        assertThrows(PoisonMessageException.class, () -> MessageCodec.decodeJob(new byte[0]));
        var version = assertThrows(PoisonMessageException.class, () -> MessageCodec.decodeJob(MessageCodec.encode(job(3))));
        assertTrue(version.getMessage().contains("schemaVersion 3"), version.getMessage());
        // a result is not a job
        assertThrows(PoisonMessageException.class, () -> MessageCodec.decodeResult(MessageCodec.encode(job(2))));
        // a part outside its job
        StudyJob badPart = job(2);
        badPart.setPartIndex(2);
        badPart.setPartCount(2);
        var part = assertThrows(PoisonMessageException.class, () -> MessageCodec.decodeJob(MessageCodec.encode(badPart)));
        assertTrue(part.getMessage().contains("part 2 of 2"), part.getMessage());
    }

    /** A job a v1 assembler published before a rolling upgrade is read by the v2 consumer as one part of one. */
    @Test
    void v1JobIsReadAsOnePartOfOne() throws Exception {
        byte[] pixels = {9, 8, 7, 6, 5, 4};
        var v1 = org.cxrgateway.schema.v1.StudyJob.newBuilder()
                .setJobId("j-v1").setRevision(3).setUpdate(true).setCreatedAtEpochMs(5L).setReceivedAtEpochMs(4L)
                .setStudy(org.cxrgateway.schema.v1.StudyInfo.newBuilder().setStudyInstanceUid("1.2.3").setPatientId("P1")
                        .setProcedureCode(new org.cxrgateway.schema.v1.Code("1", "99CXR", "x")).build())
                .setImages(List.of(org.cxrgateway.schema.v1.SourceImage.newBuilder()
                        .setSopInstanceUid("1.2.3.4").setSopClassUid("1.2.840.10008.5.1.4.1.1.1.1")
                        .setSeriesInstanceUid("1.2.3.5").setModality("DX").setViewPosition("PA").setSourceRows(2).setSourceColumns(3)
                        .setImage(org.cxrgateway.schema.v1.WorkingImage.newBuilder().setWidth(3).setHeight(2).setBitsPerPixel(8)
                                .setEncoding(org.cxrgateway.schema.v1.PixelEncoding.DEFLATE)
                                .setPixels(ByteBuffer.wrap(WorkingImagePixels.deflate(pixels, 6))).build())
                        .build()))
                .setSkipped(List.of(new org.cxrgateway.schema.v1.SkippedInstance("1.2.3.9", "LATERAL_VIEW")))
                .build();
        ByteBuffer wire = v1.toByteBuffer();
        byte[] bytes = new byte[wire.remaining()];
        wire.get(bytes);
        StudyJob job = MessageCodec.decodeJob(bytes);
        assertEquals(MessageCodec.SCHEMA_VERSION, job.getSchemaVersion());
        assertEquals("j-v1", job.getJobId());
        assertEquals(0, job.getPartIndex());
        assertEquals(1, job.getPartCount());
        assertEquals(3, job.getRevision());
        assertTrue(job.getUpdate());
        assertEquals(4L, job.getReceivedAtEpochMs());
        assertEquals("x", job.getStudy().getProcedureCode().getMeaning());
        assertEquals("PA", job.getImages().get(0).getViewPosition());
        assertEquals(PixelEncoding.DEFLATE, job.getImages().get(0).getImage().getEncoding());
        assertArrayEquals(pixels, WorkingImagePixels.decode(job.getImages().get(0).getImage()));
        assertEquals("LATERAL_VIEW", job.getSkipped().get(0).getReason());
    }

    /**
     * A result written with an earlier version 2 writer schema (kept in schemas/kafka/writers), as delivery may still
     * hold it in its pending store: v2.0, before StudyResult.preview and Finding.guidedFollows; v2.1, before
     * StudyResult.skipped. It is read with the defaults filled in, everything else as written.
     */
    @Test
    void resultsOfTheEarlierVersion2WritersAreRead() throws Exception {
        StudyResult current = org.cxrgateway.report.TestResults.study("codec").build();
        List<String> missing = List.of("preview", "skipped");
        assertEquals(missing.size(), MessageCodec.EARLIER_RESULT_WRITERS.size());
        for (int w = 0; w < missing.size(); w++) {
            Schema earlier;
            try (var in = MessageCodec.class.getResourceAsStream(MessageCodec.EARLIER_RESULT_WRITERS.get(w))) {
                earlier = new Schema.Parser().parse(in);
            }
            String added = missing.get(w);
            assertTrue(earlier.getField(added) == null && StudyResult.getClassSchema().getField(added) != null, added);
            // the added fields come last, so the specific writer writes the earlier layout from the same objects
            byte[] old = new BinaryMessageEncoder<StudyResult>(SpecificData.get(), earlier).encode(current).array();
            assertFalse(Arrays.equals(old, MessageCodec.encode(current)), "the earlier writer's fingerprint and layout differ");
            StudyResult read = MessageCodec.decodeResult(old);
            assertFalse(read.getPreview());
            assertEquals(List.of(), read.getSkipped());
            assertEquals(current, read);
            var findings = read.getImages().get(0).getRuns().get(0).getFindings();
            assertTrue(findings.stream().noneMatch(f -> f.getGuidedFollows()));
            assertTrue(findings.stream().anyMatch(f -> f.getGuided() != null));
        }
    }
}
