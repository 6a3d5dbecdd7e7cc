package org.cxrgateway.ingest;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.zip.Inflater;
import org.cxrgateway.dicom.DicomFiles;
import org.cxrgateway.dicom.DicomUids;
import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.WorkingImage;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/**
 * Our decode (PixelMed + ImageIO codecs + WorkingImageDecoder) against a reference computed by
 * pydicom/numpy on the same files, within +-1 gray level. Compressed files are made by real
 * encoders: dcmtk dcmcjpeg (JPEG lossless SV1 and process 14), dcmconv (deflate), Pillow/OpenJPEG
 * (JPEG 2000). For lossless codecs the reference is computed from the uncompressed source.
 */
class WorkingImageDecoderTest {

    static Path dir;

    @BeforeAll
    static void fixtures() throws Exception {
        dir = Fixtures.newDir("decode");
        Fixtures.cases(dir);
        Fixtures.runOk(dir, "dcmcjpeg", "+e1", "mono2_12bit_rescale_window.dcm", "jpeg_sv1.dcm");
        Fixtures.runOk(dir, "dcmcjpeg", "+el", "mono1_12bit_window.dcm", "jpeg_p14.dcm");
        Fixtures.runOk(dir, "dcmconv", "+td", "mono2_14bit_default_window.dcm", "deflated.dcm");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({
            "mono2_12bit_rescale_window.dcm, mono2_12bit_rescale_window.dcm, " + DicomUids.EXPLICIT_VR_LE,
            "mono1_12bit_window.dcm, mono1_12bit_window.dcm, " + DicomUids.IMPLICIT_VR_LE,
            "mono2_14bit_default_window.dcm, mono2_14bit_default_window.dcm, " + DicomUids.EXPLICIT_VR_LE,
            "mono2_12bit_voilut.dcm, mono2_12bit_voilut.dcm, " + DicomUids.EXPLICIT_VR_LE,
            "signed_16bit_sigmoid.dcm, signed_16bit_sigmoid.dcm, " + DicomUids.EXPLICIT_VR_LE,
            "mono1_8bit_default_window.dcm, mono1_8bit_default_window.dcm, " + DicomUids.EXPLICIT_VR_LE,
            "jpeg_sv1.dcm, mono2_12bit_rescale_window.dcm, " + DicomUids.JPEG_LOSSLESS_SV1,
            "jpeg_p14.dcm, mono1_12bit_window.dcm, " + DicomUids.JPEG_LOSSLESS_P14,
            "deflated.dcm, mono2_14bit_default_window.dcm, " + DicomUids.DEFLATED_EXPLICIT_VR_LE,
            "j2k_lossless_mono1.dcm, mono1_12bit_window.dcm, " + DicomUids.JPEG_2000_LOSSLESS,
            "j2k_lossy_mono2.dcm, j2k_lossy_mono2.dcm, " + DicomUids.JPEG_2000,
    })
    void matchesPydicomReference(String file, String referenceSource, String transferSyntax) throws Exception {
        byte[] reference = Fixtures.reference(dir.resolve(referenceSource));
        DicomFiles.Decoded decoded = DicomFiles.readWithPixels(dir.resolve(file));
        assertEquals(transferSyntax, decoded.instance().transferSyntaxUid(), "fixture transfer syntax");
        WorkingImage image = new WorkingImageDecoder(1024, 8, WorkingImageDecoder.Encoding.RAW, 10_000_000).decode(decoded.frame());
        assertEquals(decoded.instance().columns(), image.getWidth());
        assertEquals(decoded.instance().rows(), image.getHeight());
        byte[] ours = bytes(image.getPixels());
        assertEquals(reference.length, ours.length);
        assertWithinOneGrey(file, ours, reference);
        // the rendering must actually use the range, not be flat
        int min = 255;
        int max = 0;
        for (byte b : ours) {
            min = Math.min(min, b & 0xFF);
            max = Math.max(max, b & 0xFF);
        }
        assertTrue(max - min > 100, file + ": rendered range too small " + min + ".." + max);
    }

    /**
     * The working-image downscale equals OpenCV's area average (cv2.resize INTER_AREA, exact fractional
     * coverage) of the pydicom rendering within one grey level, for non-integer factors in both axes.
     */
    @ParameterizedTest(name = "{0} to long side {1}")
    @CsvSource({
            "mono2_12bit_rescale_window.dcm, 128",
            "mono1_12bit_window.dcm, 97",
            "mono2_14bit_default_window.dcm, 211",
            "signed_16bit_sigmoid.dcm, 64",
    })
    void downscaleIsOpenCvAreaAverage(String file, int longSide) throws Exception {
        DicomFiles.Decoded decoded = DicomFiles.readWithPixels(dir.resolve(file));
        WorkingImage image = new WorkingImageDecoder(longSide, 8, WorkingImageDecoder.Encoding.RAW, 10_000_000).decode(decoded.frame());
        assertEquals(longSide, Math.max(image.getWidth(), image.getHeight()));
        byte[] reference = Fixtures.reference(dir.resolve(file), image.getWidth(), image.getHeight());
        byte[] ours = bytes(image.getPixels());
        assertEquals(reference.length, ours.length);
        assertWithinOneGrey(file + " at " + image.getWidth() + "x" + image.getHeight(), ours, reference);
    }

    /**
     * The model toolkit trains on what the gateway serves: its Python decoder (toolkit/cxr_model/decode.py)
     * gives the Java decoder's working image within one grey level, downscale included.
     */
    @ParameterizedTest(name = "{0} to long side {1}")
    @CsvSource({
            "mono2_12bit_rescale_window.dcm, 1024",
            "mono1_12bit_window.dcm, 97",
            "mono2_14bit_default_window.dcm, 211",
            "mono2_12bit_voilut.dcm, 128",
            "signed_16bit_sigmoid.dcm, 1024",
            "mono1_8bit_default_window.dcm, 150",
    })
    void toolkitDecoderGivesTheSameWorkingImage(String file, int longSide) throws Exception {
        DicomFiles.Decoded decoded = DicomFiles.readWithPixels(dir.resolve(file));
        WorkingImage image = new WorkingImageDecoder(longSide, 8, WorkingImageDecoder.Encoding.RAW, 10_000_000).decode(decoded.frame());
        Path out = dir.resolve(file + "." + longSide + ".toolkit.u8");
        String size = Fixtures.runOk(Path.of("toolkit").toAbsolutePath(), Fixtures.PYTHON, "-m", "cxr_model.decode",
                dir.resolve(file).toString(), out.toString(), Integer.toString(longSide)).output().trim();
        String[] lines = size.split("\n");
        assertEquals(image.getWidth() + " " + image.getHeight(), lines[lines.length - 1].trim(), "working size");
        assertWithinOneGrey(file + " (toolkit)", bytes(image.getPixels()), Files.readAllBytes(out));
    }

    private static void assertWithinOneGrey(String what, byte[] ours, byte[] reference) {
        int worst = 0;
        int worstAt = -1;
        long differing = 0;
        for (int i = 0; i < ours.length; i++) {
            int d = Math.abs((ours[i] & 0xFF) - (reference[i] & 0xFF));
            if (d > worst) {
                worst = d;
                worstAt = i;
            }
            if (d > 0) {
                differing++;
            }
        }
        assertTrue(worst <= 1, what + ": max difference " + worst + " at pixel " + worstAt + " (ours "
                + (worstAt < 0 ? 0 : ours[worstAt] & 0xFF) + ", reference " + (worstAt < 0 ? 0 : reference[worstAt] & 0xFF)
                + "), " + differing + " pixels differ");
    }

    @Test
    void shrinksToLongSideKeepingAspectAndDeflates() throws Exception {
        DicomFiles.Decoded decoded = DicomFiles.readWithPixels(dir.resolve("mono2_12bit_rescale_window.dcm"));
        WorkingImage full = new WorkingImageDecoder(1024, 8, WorkingImageDecoder.Encoding.RAW, 10_000_000).decode(decoded.frame());
        WorkingImage small = new WorkingImageDecoder(128, 8, WorkingImageDecoder.Encoding.DEFLATE, 1_000_000).decode(decoded.frame());
        assertEquals(128, small.getHeight(), "long side (rows=300)");
        assertEquals(102, small.getWidth(), "240 * 128 / 300 rounded");
        assertEquals(PixelEncoding.DEFLATE, small.getEncoding());
        byte[] raw = inflate(bytes(small.getPixels()), small.getWidth() * small.getHeight());
        // area averaging preserves the mean brightness
        assertEquals(mean(bytes(full.getPixels())), mean(raw), 1.5);

        WorkingImage sixteen = new WorkingImageDecoder(1024, 16, WorkingImageDecoder.Encoding.RAW, 10_000_000).decode(decoded.frame());
        byte[] b16 = bytes(sixteen.getPixels());
        byte[] b8 = bytes(full.getPixels());
        assertEquals(2 * b8.length, b16.length);
        for (int i = 0; i < b8.length; i += 97) {
            int v16 = (b16[2 * i] & 0xFF) | (b16[2 * i + 1] & 0xFF) << 8;
            assertEquals(b8[i] & 0xFF, v16 / 257.0, 1.0, "16-bit and 8-bit renderings agree");
        }
    }

    @Test
    void payloadStaysUnderLimitForIncompressibleImages() {
        int n = 2000 * 1600;
        int[] noise = new int[n];
        java.util.Random r = new java.util.Random(1);
        for (int i = 0; i < n; i++) {
            noise[i] = r.nextInt(4096);
        }
        org.cxrgateway.dicom.PixelFrame f = new org.cxrgateway.dicom.PixelFrame(1600, 2000, 12, false, "MONOCHROME2",
                noise, 1, 0, Double.NaN, Double.NaN, null, null);
        WorkingImage img = new WorkingImageDecoder(1024, 8, WorkingImageDecoder.Encoding.DEFLATE, 1_000_000).decode(f);
        assertTrue(img.getPixels().remaining() <= 1_000_000, "payload " + img.getPixels().remaining());
        assertEquals(img.getWidth() / (double) img.getHeight(), 2000 / 1600.0, 0.01, "aspect ratio kept");
    }

    /**
     * AUTO (the default): raw pixels when they fit the payload cap, so that the worker need not inflate them; zlib
     * only for an image whose raw pixels would not fit, which then keeps its full working size when it compresses
     * enough, and is shrunk as any other when it does not.
     */
    @Test
    void autoSendsRawPixelsWhenTheyFitAndDeflatesOnlyThoseThatDoNot() throws Exception {
        int cap = 950_000;
        WorkingImageDecoder auto = new WorkingImageDecoder(1024, 8, WorkingImageDecoder.Encoding.AUTO, cap);
        // a 3000 x 2500 detector: 1024 x 853 working pixels, 873,472 raw bytes, under the cap
        WorkingImage portrait = auto.decode(frame(2500, 3000, (x, y) -> (x * 7 + y * 3) % 4096));
        assertEquals(1024, portrait.getHeight());
        assertEquals(853, portrait.getWidth());
        assertEquals(PixelEncoding.RAW, portrait.getEncoding());
        assertEquals(1024 * 853, portrait.getPixels().remaining());
        // a square detector: 1,048,576 raw bytes at 1024 x 1024, over the cap; smooth, so zlib keeps it at full size
        WorkingImage square = auto.decode(frame(2048, 2048, (x, y) -> (x + y) % 4096));
        assertEquals(1024, square.getWidth());
        assertEquals(1024, square.getHeight());
        assertEquals(PixelEncoding.DEFLATE, square.getEncoding());
        assertTrue(square.getPixels().remaining() <= cap);
        byte[] raw = inflate(bytes(square.getPixels()), 1024 * 1024);
        assertArrayEquals(raw, bytes(new WorkingImageDecoder(1024, 8, WorkingImageDecoder.Encoding.RAW, 10_000_000)
                .decode(frame(2048, 2048, (x, y) -> (x + y) % 4096)).getPixels()), "the same pixels, compressed");
        // square and pure noise: zlib cannot bring it under the cap; shrunk until its raw pixels fit, then raw
        java.util.Random r = new java.util.Random(3);
        WorkingImage noisy = auto.decode(frame(1024, 1024, (x, y) -> r.nextInt(4096)));
        assertTrue(noisy.getWidth() < 1024 && noisy.getPixels().remaining() <= cap, noisy.getWidth() + " px, "
                + noisy.getPixels().remaining() + " bytes");
        assertEquals(PixelEncoding.RAW, noisy.getEncoding());
    }

    private static org.cxrgateway.dicom.PixelFrame frame(int columns, int rows, java.util.function.IntBinaryOperator value) {
        int[] stored = new int[columns * rows];
        for (int y = 0; y < rows; y++) {
            for (int x = 0; x < columns; x++) {
                stored[y * columns + x] = value.applyAsInt(x, y);
            }
        }
        return new org.cxrgateway.dicom.PixelFrame(rows, columns, 12, false, "MONOCHROME2", stored, 1, 0, Double.NaN,
                Double.NaN, null, null);
    }

    static byte[] bytes(ByteBuffer b) {
        ByteBuffer d = b.duplicate();
        byte[] out = new byte[d.remaining()];
        d.get(out);
        return out;
    }

    static byte[] inflate(byte[] in, int size) throws Exception {
        Inflater inf = new Inflater();
        inf.setInput(in);
        byte[] out = new byte[size];
        int n = 0;
        while (n < size && !inf.finished()) {
            n += inf.inflate(out, n, size - n);
        }
        inf.end();
        assertEquals(size, n);
        return out;
    }

    static double mean(byte[] b) {
        double s = 0;
        for (byte x : b) {
            s += x & 0xFF;
        }
        return s / b.length;
    }
}
