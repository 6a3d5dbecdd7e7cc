package org.cxrgateway.report;

import org.cxrgateway.message.WorkingImagePixels;

import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.WorkingImage;


/** Decodes the working image of a result message into 8-bit display grey levels. */
public final class WorkingImages {

    private WorkingImages() {
    }

    /** Row-major 8-bit grey, 0 = black. 16-bit input is min-max scaled, since it need not span 0..65535. */
    public static byte[] toGray8(WorkingImage img) throws ReportException {
        int w = img.getWidth();
        int h = img.getHeight();
        int bpp = img.getBitsPerPixel();
        byte[] raw;
        try {
            raw = WorkingImagePixels.decode(img);
        } catch (IllegalArgumentException e) {
            throw new ReportException(e.getMessage());
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
}
