package org.cxrgateway.report;

import org.cxrgateway.schema.v2.GuidedMap;
import org.cxrgateway.xai.Bilinear;

import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * Decodes a {@link GuidedMap} (signed bytes round(127 v / maxAbs), zlib, on the model-input grid covering a
 * rectangle of the working image) and places it on another grid spanning the whole working image. Every
 * size comes from the message, so every size is checked before anything is allocated.
 */
final class GuidedMaps {

    /** Larger than any model input; bounds the inflated size of a hostile message. */
    static final int MAX_SIDE = 4096;

    private GuidedMaps() {
    }

    /** The map's values as fractions of maxAbs, in [-1, 1], row-major on its own grid. */
    static float[] decode(GuidedMap g, int workingW, int workingH) throws ReportException {
        int w = g.getWidth();
        int h = g.getHeight();
        if (w <= 0 || h <= 0 || w > MAX_SIDE || h > MAX_SIDE) {
            throw new ReportException("guided map is " + w + "x" + h);
        }
        if (g.getRegionX() < 0 || g.getRegionY() < 0 || g.getRegionWidth() <= 0 || g.getRegionHeight() <= 0
                || (long) g.getRegionX() + g.getRegionWidth() > workingW
                || (long) g.getRegionY() + g.getRegionHeight() > workingH) {
            throw new ReportException("guided map region " + g.getRegionX() + "," + g.getRegionY() + " "
                    + g.getRegionWidth() + "x" + g.getRegionHeight() + " is outside the " + workingW + "x" + workingH
                    + " working image");
        }
        if (!Float.isFinite(g.getMaxAbs()) || g.getMaxAbs() < 0) {
            throw new ReportException("guided map maxAbs is " + g.getMaxAbs());
        }
        byte[] packed = org.cxrgateway.message.WorkingImagePixels.bytes(g.getValues());
        byte[] raw = new byte[w * h];
        Inflater inf = new Inflater();
        try {
            inf.setInput(packed);
            int n = 0;
            while (n < raw.length && !inf.finished()) {
                int k = inf.inflate(raw, n, raw.length - n);
                if (k == 0 && (inf.needsInput() || inf.needsDictionary())) {
                    break;
                }
                n += k;
            }
            // one byte more than expected is already too many: probe without allocating the rest
            boolean longer = !inf.finished() && inf.inflate(new byte[1]) > 0;
            if (n != raw.length || longer) {
                throw new ReportException("guided map inflates to " + (longer ? "more than " + raw.length : n)
                        + " bytes, expected " + raw.length);
            }
        } catch (DataFormatException e) {
            throw new ReportException("guided map is not zlib data: " + e.getMessage());
        } finally {
            inf.end();
        }
        float[] v = new float[raw.length];
        for (int i = 0; i < raw.length; i++) {
            v[i] = Math.max(-127, raw[i]) / 127f;
        }
        return v;
    }

    /**
     * The map on a {@code gridW x gridH} grid spanning the whole working image: its region scaled and
     * rounded as the Grad-CAM region is (inference Scorer), bilinear (PyTorch align_corners=False), 0 outside.
     */
    static float[] onGrid(GuidedMap g, float[] values, int workingW, int workingH, int gridW, int gridH) {
        double sx = (double) gridW / workingW;
        double sy = (double) gridH / workingH;
        int x0 = Math.min(gridW - 1, (int) Math.round(g.getRegionX() * sx));
        int y0 = Math.min(gridH - 1, (int) Math.round(g.getRegionY() * sy));
        int rw = Math.max(1, Math.min(gridW - x0, (int) Math.round(g.getRegionWidth() * sx)));
        int rh = Math.max(1, Math.min(gridH - y0, (int) Math.round(g.getRegionHeight() * sy)));
        float[] region = new float[rw * rh];
        Bilinear.resize(values, 0, g.getHeight(), g.getWidth(), g.getWidth(), region, 0, rh, rw);
        float[] out = new float[gridW * gridH];
        for (int y = 0; y < rh; y++) {
            System.arraycopy(region, y * rw, out, (y0 + y) * gridW + x0, rw);
        }
        return out;
    }
}
