package org.cxrgateway.dicom;

import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Whole files pass, files cut anywhere fail: implicit and explicit VR, sequences of undefined
 * length (VOI LUT), encapsulated JPEG 2000 Pixel Data, and a file without pixel data.
 */
class DataSetExtentTest {

    static Path dir;

    @BeforeAll
    static void fixtures() throws Exception {
        Files.createDirectories(Path.of("target", "extent"));
        dir = Files.createTempDirectory(Path.of("target", "extent"), "cases");
        Tools.Result r = Tools.run("/usr/bin/python3", "src/test/python/dicom_fixtures.py", "cases", dir.toString());
        if (r.exit() != 0) {
            throw new IllegalStateException(r.out());
        }
    }

    static List<Path> cases() throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(p -> p.toString().endsWith(".dcm")).sorted().toList();
        }
    }

    @Test
    void wholeFilesPassAndEveryCutFails() throws Exception {
        List<Path> files = cases();
        assertFalse(files.isEmpty());
        for (Path f : files) {
            String ts = DicomFiles.readHeader(f).transferSyntaxUid();
            assertDoesNotThrow(() -> DataSetExtent.check(f, ts), f.toString());
            byte[] all = Files.readAllBytes(f);
            // cut inside the header, near the middle, and by a single byte (inside the last value)
            for (int cut : new int[] {200, all.length / 2, all.length - 1}) {
                Path part = dir.resolve("cut-" + cut + "-" + f.getFileName());
                Files.write(part, Arrays.copyOf(all, cut));
                assertThrows(IOException.class, () -> DataSetExtent.check(part, ts), part.toString());
            }
        }
    }

    /** Issue 11: a truncated file is reported as such, in one message, not as "no pixel data". */
    @Test
    void readingATruncatedFileSaysTruncatedDataSet() throws Exception {
        Path f = cases().stream().filter(p -> p.getFileName().toString().equals("mono2_12bit_rescale_window.dcm"))
                .findFirst().orElseThrow();
        byte[] all = Files.readAllBytes(f);
        Path part = dir.resolve("truncated-read.dcm");
        Files.write(part, Arrays.copyOf(all, all.length / 2));
        IOException e = assertThrows(IOException.class, () -> DicomFiles.readWithPixels(part));
        assertTrue(e.getMessage().startsWith("truncated data set: "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        assertDoesNotThrow(() -> DicomFiles.readWithPixels(f), "the whole file still reads");
    }
}
