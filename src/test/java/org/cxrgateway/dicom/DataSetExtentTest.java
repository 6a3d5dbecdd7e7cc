package org.cxrgateway.dicom;

import org.cxrgateway.testing.Tools;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Whole files pass, files cut anywhere fail: implicit and explicit VR, sequences of undefined
 * length (VOI LUT), encapsulated JPEG 2000 Pixel Data, and a file without pixel data; checked from the
 * file and walked as a stream in fragments of any size (the C-STORE path), with the same verdicts.
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
            // the cut copies that the tests write into the same directory are not cases
            return s.filter(p -> p.toString().endsWith(".dcm")).filter(p -> !p.getFileName().toString().startsWith("cut-")
                    && !p.getFileName().toString().startsWith("truncated-")).sorted().toList();
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

    /**
     * The C-STORE path walks the data set as it streams to disk: whatever the fragment sizes (single bytes
     * included), a whole file passes and every cut fails, and the bytes up to the Pixel Data tag that it
     * keeps give the same header as the file.
     */
    @Test
    void streamedWalkGivesTheFileChecksVerdictAndHeader() throws Exception {
        Random random = new Random(13);
        List<Path> files = cases();
        assertFalse(files.isEmpty());
        for (Path f : files) {
            InstanceHeader fromFile = DicomFiles.readHeader(f);
            String ts = fromFile.transferSyntaxUid();
            byte[] all = Files.readAllBytes(f);
            for (int maxFragment : new int[] {1, 7, 4096, all.length}) {
                DataSetExtent.Scanner whole = stream(all, all.length, ts, maxFragment, random);
                assertDoesNotThrow(whole::finish, f + " in fragments of up to " + maxFragment);
                long pixelData = whole.pixelDataAt();
                int head = pixelData < 0 ? all.length : (int) pixelData + 12;
                assertEquals(fromFile, DicomFiles.readHeader(all, head), f.toString());
                for (int cut : new int[] {200, all.length / 2, all.length - 1}) {
                    assertThrows(IOException.class, () -> stream(all, cut, ts, maxFragment, random).finish(),
                            f + " cut at " + cut + " in fragments of up to " + maxFragment);
                }
            }
        }
    }

    /** Feeds the first {@code length} bytes in random fragments of 1 to {@code maxFragment} bytes. */
    private static DataSetExtent.Scanner stream(byte[] all, int length, String ts, int maxFragment, Random random)
            throws IOException {
        DataSetExtent.Scanner scanner = new DataSetExtent.Scanner(ts, true);
        int pos = 0;
        while (pos < length) {
            int n = Math.min(length - pos, 1 + random.nextInt(maxFragment));
            scanner.feed(Arrays.copyOfRange(all, pos, pos + n), 0, n);
            pos += n;
        }
        return scanner;
    }
}
