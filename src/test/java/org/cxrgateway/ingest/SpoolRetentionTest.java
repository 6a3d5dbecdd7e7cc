package org.cxrgateway.ingest;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The spool stays bounded without ever dropping a study that still has work to do. */
class SpoolRetentionTest {

    private static final Duration DAY = Duration.ofHours(24);

    @TempDir
    Path root;

    private Spool spool(String study, List<String> sops) throws Exception {
        Spool spool = new Spool(root, 0);
        for (String sop : sops) {
            Path f = spool.instanceFile(study, sop);
            Files.createDirectories(f.getParent());
            Files.write(f, new byte[]{1});
        }
        return spool;
    }

    private void age(String study) throws Exception {
        try (Stream<Path> files = Files.list(root.resolve("studies").resolve(study))) {
            for (Path f : files.toList()) {
                Files.setLastModifiedTime(f, FileTime.from(Instant.now().minus(Duration.ofHours(25))));
            }
        }
    }

    @Test
    void publishedStudyLeavesAfterRetention() throws Exception {
        Spool spool = spool("1.2.1", List.of("1.2.1.1", "1.2.1.2"));
        spool.markPublished("1.2.1", new Spool.Published(0, "j", List.of("1.2.1.1"), List.of("1.2.1.1", "1.2.1.2")));
        assertFalse(spool.purgeIfSettled("1.2.1", DAY, f -> true), "young: kept");
        age("1.2.1");
        assertTrue(spool.purgeIfSettled("1.2.1", DAY, f -> true));
        assertEquals(List.of(), spool.studyUids());
    }

    @Test
    void anInstanceTheLastJobDidNotCoverKeepsTheStudy() throws Exception {
        Spool spool = spool("1.2.2", List.of("1.2.2.1", "1.2.2.2"));
        spool.markPublished("1.2.2", new Spool.Published(0, "j", List.of("1.2.2.1"), List.of("1.2.2.1")));
        age("1.2.2");
        assertFalse(spool.purgeIfSettled("1.2.2", DAY, f -> true));
        assertEquals(List.of("1.2.2"), spool.studyUids());
    }

    @Test
    void unpublishedStudyIsKeptUnlessNothingInItWasEligible() throws Exception {
        Spool spool = spool("1.2.3", List.of("1.2.3.1"));
        age("1.2.3");
        assertFalse(spool.purgeIfSettled("1.2.3", DAY, f -> true), "still waiting for Kafka: kept");
        assertTrue(spool.purgeIfSettled("1.2.3", DAY, f -> false), "only ineligible instances: removed");
    }

    @Test
    void quarantinedStudyIsKeptAndItsMarkerSurvivesARestart() throws Exception {
        Spool spool = spool("1.2.4", List.of("1.2.4.1"));
        spool.markQuarantined("1.2.4", new Spool.Quarantined("RecordTooLargeException: too\nbig", 1, 1234L));
        age("1.2.4");
        assertFalse(spool.purgeIfSettled("1.2.4", DAY, f -> false), "quarantined, even with nothing eligible: kept");
        Spool reopened = new Spool(root, 0);
        assertEquals(java.util.Optional.of(new Spool.Quarantined("RecordTooLargeException: too big", 1, 1234L)),
                reopened.quarantined("1.2.4"));
        reopened.releaseQuarantine("1.2.4");
        assertEquals(java.util.Optional.empty(), reopened.quarantined("1.2.4"));
        assertEquals(List.of("1.2.4.1"), reopened.instanceUids("1.2.4"), "released, its files stay");
    }
}
