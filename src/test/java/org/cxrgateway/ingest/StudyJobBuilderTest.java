package org.cxrgateway.ingest;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Random;
import org.cxrgateway.schema.v2.SkippedInstance;
import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.StudyJob;
import org.junit.jupiter.api.Test;

/** The one path from files to a job that the assembler and the score command share. */
class StudyJobBuilderTest {

    @Test
    void everyFileIsAnImageOrASkippedInstanceWithItsReasonAndTheJobIdCoversThemAll() throws Exception {
        Path dir = Fixtures.newDir("job-builder");
        String study = Fixtures.cases(dir);
        Path garbage = dir.resolve("garbage.dcm");
        byte[] junk = new byte[4096];
        new Random(7).nextBytes(junk);
        Files.write(garbage, junk);
        WorkingImageDecoder decoder = new WorkingImageDecoder(1024, 8, WorkingImageDecoder.Encoding.DEFLATE, 1_000_000);

        StudyJobBuilder.FileOutcome image = StudyJobBuilder.read(dir.resolve("mono2_12bit_rescale_window.dcm"), decoder);
        StudyJobBuilder.FileOutcome lateral = StudyJobBuilder.read(dir.resolve("bad_lateral.dcm"), decoder);
        StudyJobBuilder.FileOutcome noPixels = StudyJobBuilder.read(dir.resolve("bad_no_pixel_data.dcm"), decoder);
        StudyJobBuilder.FileOutcome unreadable = StudyJobBuilder.read(garbage, decoder);
        assertNotNull(image.image());
        assertEquals(Eligibility.LATERAL_VIEW, lateral.skipReason());
        assertEquals(Eligibility.NO_PIXEL_DATA, noPixels.skipReason(), "no pixel data is a reason, not an error");
        assertNull(noPixels.error());
        assertEquals(Eligibility.UNREADABLE, unreadable.skipReason());
        assertNull(unreadable.instance());
        assertNotNull(unreadable.error());

        StudyJobBuilder b = new StudyJobBuilder();
        b.add(image.instance().sopInstanceUid(), image);
        b.add(lateral.instance().sopInstanceUid(), lateral);
        b.add(noPixels.instance().sopInstanceUid(), noPixels);
        b.add("1.2.3.99", unreadable);
        StudyJob job = b.job().build();
        assertEquals(study, job.getStudy().getStudyInstanceUid());
        assertEquals(List.of(image.instance().sopInstanceUid()), b.eligible());
        assertEquals(List.of(Eligibility.LATERAL_VIEW, Eligibility.NO_PIXEL_DATA, Eligibility.UNREADABLE),
                job.getSkipped().stream().map(SkippedInstance::getReason).toList());
        assertEquals(StudyJobBuilder.jobId(study, List.of(image.instance().sopInstanceUid(),
                lateral.instance().sopInstanceUid(), noPixels.instance().sopInstanceUid(), "1.2.3.99")), job.getJobId());
    }
}
