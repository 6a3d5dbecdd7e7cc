package org.cxrgateway.dicom;

import com.pixelmed.dicom.Attribute;
import com.pixelmed.dicom.AttributeList;
import com.pixelmed.dicom.AttributeTag;
import com.pixelmed.dicom.DicomException;
import com.pixelmed.dicom.DicomInputStream;
import com.pixelmed.dicom.OtherByteAttributeMultipleCompressedFrames;
import com.pixelmed.dicom.SequenceAttribute;
import com.pixelmed.dicom.TagFromName;
import java.awt.image.Raster;
import java.io.BufferedInputStream;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import javax.imageio.ImageIO;
import javax.imageio.ImageReader;
import javax.imageio.stream.ImageInputStream;

/** Reading stored Part-10 files into plain Java values. */
public final class DicomFiles {

    private DicomFiles() {
    }

    static {
        // Quarkus loads the codec jars through its own class loader; the JDK's IIORegistry only sees
        // providers visible from the thread context class loader at scan time.
        ClassLoader previous = Thread.currentThread().getContextClassLoader();
        try {
            Thread.currentThread().setContextClassLoader(DicomFiles.class.getClassLoader());
            ImageIO.scanForPlugins();
        } finally {
            Thread.currentThread().setContextClassLoader(previous);
        }
    }

    /** Reads the identifying attributes (stops before Pixel Data). */
    public static InstanceHeader readHeader(Path file) throws IOException {
        return header(read(file, true));
    }

    /**
     * Reads the identifying attributes from the first {@code length} bytes of a Part-10 file held in memory
     * (the C-STORE path keeps them as they stream to disk, so the file is not read back): they must reach at
     * least the tag of the top-level Pixel Data, where the read stops, or hold the whole file.
     */
    static InstanceHeader readHeader(byte[] head, int length) throws IOException {
        return header(read(new ByteArrayInputStream(head, 0, length), true));
    }

    private static InstanceHeader header(AttributeList list) {
        return new InstanceHeader(
                string(list, TagFromName.SOPClassUID),
                string(list, TagFromName.SOPInstanceUID),
                string(list, TagFromName.StudyInstanceUID),
                string(list, TagFromName.SeriesInstanceUID),
                string(list, TagFromName.TransferSyntaxUID));
    }

    /** Reads the attributes that ingest uses (stops before Pixel Data, but tells whether it is there). */
    public static DicomInstance readInstance(Path file) throws IOException {
        AttributeList list = read(file, false);
        return toInstance(list);
    }

    /** Reads the attributes and the first frame of pixel data, decompressing it when encapsulated. */
    public static Decoded readWithPixels(Path file) throws IOException {
        Parsed parsed = parse(file);
        return new Decoded(parsed.instance(), parsed.frame());
    }

    /** An instance and its first frame. */
    public record Decoded(DicomInstance instance, PixelFrame frame) {
    }

    /**
     * Reads a file once: its attributes now, its first frame only when asked, so that an ineligible file is
     * never decompressed and an eligible one is not read a second time. An IOException here means the file
     * is unreadable; one from {@link Parsed#frame} means its pixels are missing or undecodable.
     */
    public static Parsed parse(Path file) throws IOException {
        AttributeList list = read(file, false);
        return new Parsed(list, toInstance(list));
    }

    /** A file read once (see {@link #parse}); it holds the whole data set until dropped. */
    public static final class Parsed {
        private final AttributeList list;
        private final DicomInstance instance;

        private Parsed(AttributeList list, DicomInstance instance) {
            this.list = list;
            this.instance = instance;
        }

        public DicomInstance instance() {
            return instance;
        }

        /** Decodes the first frame of pixel data, decompressing it when encapsulated. */
        public PixelFrame frame() throws IOException {
            if (!instance.hasPixelData()) {
                throw new IOException("no pixel data");
            }
            return pixels(list, instance);
        }
    }

    private static AttributeList read(Path file, boolean stopAtPixelData) throws IOException {
        if (!stopAtPixelData) {
            // PixelMed reads a truncated file up to the cut, logs the EOF with a stack trace at ERROR and returns
            // what it has, which then looks like "no pixel data"; say what it is, in one line, before it reads
            String ts = string(read(file, true), TagFromName.TransferSyntaxUID);
            try {
                DataSetExtent.check(file, ts == null ? DicomUids.EXPLICIT_VR_LE : ts);
            } catch (IOException e) {
                throw new IOException("truncated data set: " + e.getMessage());
            }
        }
        return read(new BufferedInputStream(Files.newInputStream(file), 65536), stopAtPixelData);
    }

    private static AttributeList read(InputStream in, boolean stopAtPixelData) throws IOException {
        AttributeList list = new AttributeList();
        list.setDecompressPixelData(false);
        try (in; DicomInputStream din = new DicomInputStream(in)) {
            if (stopAtPixelData) {
                list.read(din, TagFromName.PixelData);
            } else {
                list.read(din);
            }
        } catch (DicomException | RuntimeException e) {
            // PixelMed signals some malformed input with unchecked exceptions; all of it is bad input here.
            throw new IOException("cannot parse DICOM: " + e.getMessage(), e);
        } catch (OutOfMemoryError e) {
            // a garbage value length makes PixelMed try to allocate it: the allocation fails before
            // anything is held, so this is bad input, not a broken JVM
            throw new IOException("cannot parse DICOM: value length beyond memory", e);
        }
        return list;
    }

    private static DicomInstance toInstance(AttributeList list) {
        String codeValue = null;
        String codeScheme = null;
        String codeMeaning = null;
        AttributeList procedure = firstItem(list, TagFromName.ProcedureCodeSequence);
        if (procedure != null) {
            codeValue = string(procedure, TagFromName.CodeValue);
            codeScheme = string(procedure, TagFromName.CodingSchemeDesignator);
            codeMeaning = string(procedure, TagFromName.CodeMeaning);
        }
        Attribute pixel = list.get(TagFromName.PixelData);
        return new DicomInstance(
                string(list, TagFromName.SOPClassUID),
                string(list, TagFromName.SOPInstanceUID),
                string(list, TagFromName.TransferSyntaxUID),
                string(list, TagFromName.StudyInstanceUID),
                string(list, TagFromName.StudyID),
                string(list, TagFromName.AccessionNumber),
                string(list, TagFromName.StudyDate),
                string(list, TagFromName.StudyTime),
                string(list, TagFromName.StudyDescription),
                string(list, TagFromName.ReferringPhysicianName),
                string(list, TagFromName.PatientID),
                string(list, TagFromName.IssuerOfPatientID),
                string(list, TagFromName.PatientName),
                string(list, TagFromName.PatientBirthDate),
                string(list, TagFromName.PatientSex),
                codeValue, codeScheme, codeMeaning,
                string(list, TagFromName.SeriesInstanceUID),
                string(list, TagFromName.SeriesNumber),
                string(list, TagFromName.SeriesDescription),
                string(list, TagFromName.ProtocolName),
                string(list, TagFromName.InstanceNumber),
                string(list, TagFromName.Modality),
                string(list, TagFromName.ViewPosition),
                string(list, TagFromName.ImageLaterality),
                string(list, TagFromName.BodyPartExamined),
                string(list, TagFromName.PhotometricInterpretation),
                Attribute.getSingleIntegerValueOrDefault(list, TagFromName.Rows, 0),
                Attribute.getSingleIntegerValueOrDefault(list, TagFromName.Columns, 0),
                Attribute.getSingleIntegerValueOrDefault(list, TagFromName.SamplesPerPixel, 1),
                Attribute.getSingleIntegerValueOrDefault(list, TagFromName.BitsAllocated, 0),
                Attribute.getSingleIntegerValueOrDefault(list, TagFromName.BitsStored, 0),
                Attribute.getSingleIntegerValueOrDefault(list, TagFromName.PixelRepresentation, 0),
                pixel != null && pixel.getVL() != 0);
    }

    private static PixelFrame pixels(AttributeList list, DicomInstance in) throws IOException {
        int rows = in.rows();
        int cols = in.columns();
        if (rows <= 0 || cols <= 0 || in.samplesPerPixel() != 1) {
            throw new IOException("not a single-sample image (" + rows + "x" + cols + ", "
                    + in.samplesPerPixel() + " samples)");
        }
        int bitsAllocated = in.bitsAllocated();
        int bitsStored = in.bitsStored() > 0 ? in.bitsStored() : bitsAllocated;
        if (bitsStored < 1 || bitsStored > 16 || (bitsAllocated != 8 && bitsAllocated != 16)) {
            throw new IOException("unsupported bit depth: allocated " + bitsAllocated + ", stored " + bitsStored);
        }
        boolean signed = in.pixelRepresentation() == 1;
        int n = rows * cols;
        int[] stored = new int[n];
        Attribute pixelData = list.getPixelData();
        try {
            if (pixelData instanceof OtherByteAttributeMultipleCompressedFrames compressed) {
                byte[][] frames = compressed.getFrames();
                if (frames == null || frames.length == 0) {
                    throw new IOException("encapsulated pixel data without frames");
                }
                Raster raster = decodeCompressed(frames[0], in.transferSyntaxUid());
                if (raster.getWidth() != cols || raster.getHeight() != rows) {
                    throw new IOException("compressed frame is " + raster.getWidth() + "x" + raster.getHeight()
                            + ", header says " + cols + "x" + rows);
                }
                raster.getSamples(raster.getMinX(), raster.getMinY(), cols, rows, 0, stored);
            } else if (bitsAllocated == 16) {
                short[] values = shorts(pixelData);
                if (values.length < n) {
                    throw new IOException("pixel data too short: " + values.length + " < " + n);
                }
                for (int i = 0; i < n; i++) {
                    stored[i] = values[i] & 0xFFFF;
                }
            } else {
                byte[] values = pixelData.getByteValues();
                if (values.length < n) {
                    throw new IOException("pixel data too short: " + values.length + " < " + n);
                }
                for (int i = 0; i < n; i++) {
                    stored[i] = values[i] & 0xFF;
                }
            }
        } catch (DicomException | RuntimeException e) {
            throw new IOException("cannot read pixel data: " + e.getMessage(), e);
        }
        int mask = (1 << bitsStored) - 1;
        int signBit = 1 << (bitsStored - 1);
        if (pixelData instanceof OtherByteAttributeMultipleCompressedFrames && !signed) {
            // Lossy codecs overshoot the stored range (a 12-bit image may decode to 4097):
            // clamp, because masking would wrap a bright pixel to black.
            for (int i = 0; i < n; i++) {
                stored[i] = Math.max(0, Math.min(mask, stored[i]));
            }
        }
        for (int i = 0; i < n; i++) {
            int v = stored[i] & mask;
            if (signed && (v & signBit) != 0) {
                v -= (1 << bitsStored);
            }
            stored[i] = v;
        }
        double[] center = Attribute.getDoubleValues(list, TagFromName.WindowCenter);
        double[] width = Attribute.getDoubleValues(list, TagFromName.WindowWidth);
        return new PixelFrame(rows, cols, bitsStored, signed, in.photometricInterpretation(), stored,
                Attribute.getSingleDoubleValueOrDefault(list, TagFromName.RescaleSlope, 1.0),
                Attribute.getSingleDoubleValueOrDefault(list, TagFromName.RescaleIntercept, 0.0),
                center != null && center.length > 0 ? center[0] : Double.NaN,
                width != null && width.length > 0 ? width[0] : Double.NaN,
                string(list, TagFromName.VOILUTFunction),
                voiLut(list));
    }

    private static short[] shorts(Attribute pixelData) throws DicomException {
        byte[] vr = pixelData.getVR();
        if (vr != null && vr.length == 2 && vr[0] == 'O' && vr[1] == 'B') {
            byte[] b = pixelData.getByteValues();
            short[] s = new short[b.length / 2];
            for (int i = 0; i < s.length; i++) {
                s[i] = (short) ((b[2 * i] & 0xFF) | (b[2 * i + 1] & 0xFF) << 8);
            }
            return s;
        }
        return pixelData.getShortValues();
    }

    private static PixelFrame.Lut voiLut(AttributeList list) throws IOException {
        AttributeList item = firstItem(list, TagFromName.VOILUTSequence);
        if (item == null) {
            return null;
        }
        int[] descriptor = Attribute.getIntegerValues(item, TagFromName.LUTDescriptor);
        Attribute data = item.get(TagFromName.LUTData);
        if (descriptor == null || descriptor.length < 3 || data == null) {
            return null;
        }
        int entries = descriptor[0] == 0 ? 65536 : descriptor[0] & 0xFFFF;
        int first = descriptor[1];
        int bits = descriptor[2];
        try {
            int[] values = new int[entries];
            byte[] vr = data.getVR();
            boolean ow = vr != null && vr.length == 2 && vr[0] == 'O';
            if (ow || bits > 8) {
                short[] s = data.getShortValues();
                for (int i = 0; i < entries && i < s.length; i++) {
                    values[i] = s[i] & 0xFFFF;
                }
            } else {
                int[] v = data.getIntegerValues();
                for (int i = 0; i < entries && i < v.length; i++) {
                    values[i] = v[i] & 0xFFFF;
                }
            }
            return new PixelFrame.Lut(first, bits, values);
        } catch (DicomException e) {
            throw new IOException("bad VOI LUT: " + e.getMessage(), e);
        }
    }

    private static Raster decodeCompressed(byte[] frame, String transferSyntax) throws IOException {
        String format;
        String preferredPrefix;
        if (DicomUids.JPEG_2000.equals(transferSyntax) || DicomUids.JPEG_2000_LOSSLESS.equals(transferSyntax)) {
            format = "jpeg2000";
            preferredPrefix = "com.github.jaiimageio";
        } else if (DicomUids.JPEG_BASELINE.equals(transferSyntax) || DicomUids.JPEG_LOSSLESS_P14.equals(transferSyntax)
                || DicomUids.JPEG_LOSSLESS_SV1.equals(transferSyntax)) {
            format = "jpeg";
            preferredPrefix = "com.twelvemonkeys";
        } else {
            throw new IOException("no decoder for transfer syntax " + transferSyntax);
        }
        ImageReader reader = reader(format, preferredPrefix);
        try (ImageInputStream iis = ImageIO.createImageInputStream(new ByteArrayInputStream(frame))) {
            reader.setInput(iis, true, true);
            return reader.readRaster(0, null);
        } finally {
            reader.dispose();
        }
    }

    private static ImageReader reader(String format, String preferredPrefix) throws IOException {
        ImageReader fallback = null;
        for (Iterator<ImageReader> it = ImageIO.getImageReadersByFormatName(format); it.hasNext(); ) {
            ImageReader r = it.next();
            if (r.getClass().getName().startsWith(preferredPrefix)) {
                if (fallback != null) {
                    fallback.dispose();
                }
                return r;
            }
            if (fallback == null) {
                fallback = r;
            } else {
                r.dispose();
            }
        }
        if (fallback == null) {
            throw new IOException("no ImageIO reader for " + format);
        }
        return fallback;
    }

    private static AttributeList firstItem(AttributeList list, AttributeTag tag) {
        Attribute a = list.get(tag);
        if (a instanceof SequenceAttribute seq && seq.getNumberOfItems() > 0) {
            return seq.getItem(0).getAttributeList();
        }
        return null;
    }

    private static String string(AttributeList list, AttributeTag tag) {
        String v = Attribute.getSingleStringValueOrNull(list, tag);
        if (v == null) {
            return null;
        }
        v = v.trim();
        return v.isEmpty() ? null : v;
    }
}
