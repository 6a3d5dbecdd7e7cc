package org.cxrgateway.report;

import org.cxrgateway.schema.v1.PixelEncoding;
import org.cxrgateway.schema.v1.WorkingImage;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/** Decodes the working image of a result message into 8-bit display grey levels. */
public final class WorkingImages {

    /** Guards against a hostile or corrupt message inflating to an absurd size. */
    static final int MAX_PIXELS = 8192 * 8192;

    private WorkingImages() {
    }

    /** Row-major 8-bit grey, 0 = black. 16-bit input is min-max scaled, since it need not span 0..65535. */
    public static byte[] toGray8(WorkingImage img) throws ReportException {
        int w = img.getWidth();
        int h = img.getHeight();
        int bpp = img.getBitsPerPixel();
        if (w <= 0 || h <= 0 || (long) w * h > MAX_PIXELS) {
            throw new ReportException("working image size " + w + "x" + h + " out of range");
        }
        if (bpp != 8 && bpp != 16) {
            throw new ReportException("working image bits per pixel " + bpp + " not 8 or 16");
        }
        int expected = w * h * (bpp / 8);
        byte[] raw = bytes(img.getPixels());
        if (img.getEncoding() == PixelEncoding.DEFLATE) {
            raw = inflate(raw, expected);
        }
        if (raw.length != expected) {
            throw new ReportException("working image has " + raw.length + " bytes, expected " + expected);
        }
        if (bpp == 8) {
            return raw;
        }
        int n = w * h;
        int min = 65535;
        int max = 0;
        for (int i = 0; i < n; i++) {
            int v = (raw[2 * i] & 0xff) | (raw[2 * i + 1] & 0xff) << 8;
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        byte[] out = new byte[n];
        int range = Math.max(1, max - min);
        for (int i = 0; i < n; i++) {
            int v = (raw[2 * i] & 0xff) | (raw[2 * i + 1] & 0xff) << 8;
            out[i] = (byte) ((v - min) * 255 / range);
        }
        return out;
    }

    static byte[] bytes(ByteBuffer buf) {
        ByteBuffer d = buf.duplicate();
        byte[] b = new byte[d.remaining()];
        d.get(b);
        return b;
    }

    /** zlib (RFC 1950) or raw deflate: producers differ, and both are cheap to try. */
    static byte[] inflate(byte[] data, int expected) throws ReportException {
        try {
            return inflate(data, expected, false);
        } catch (DataFormatException e) {
            try {
                return inflate(data, expected, true);
            } catch (DataFormatException e2) {
                throw new ReportException("working image DEFLATE data is corrupt: " + e2.getMessage());
            }
        }
    }

    private static byte[] inflate(byte[] data, int expected, boolean nowrap) throws DataFormatException, ReportException {
        Inflater inf = new Inflater(nowrap);
        try {
            inf.setInput(data);
            ByteArrayOutputStream out = new ByteArrayOutputStream(expected);
            byte[] buf = new byte[65536];
            while (!inf.finished()) {
                int k = inf.inflate(buf);
                if (k == 0 && (inf.needsInput() || inf.needsDictionary())) {
                    throw new DataFormatException("truncated stream");
                }
                out.write(buf, 0, k);
                if (out.size() > expected) {
                    throw new ReportException("working image inflates past " + expected + " bytes");
                }
            }
            return out.toByteArray();
        } finally {
            inf.end();
        }
    }
}
