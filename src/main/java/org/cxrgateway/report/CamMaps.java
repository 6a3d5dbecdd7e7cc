package org.cxrgateway.report;

import org.cxrgateway.schema.v2.ActivationMap;
import org.cxrgateway.xai.GradCam;

import java.util.List;

/**
 * Places a raw Grad-CAM ({@link ActivationMap}: feature resolution, any positive scale, covering a rectangle
 * of the working image) on the heatmap grid the Secondary Capture and the Parametric Map use: a grid spanning
 * the whole working image, scaled so that its longer side is at most {@link #MAX_SIDE}, the region upsampled
 * bilinearly (PyTorch align_corners=False), min-max normalised to 0..255, zero outside. This is the rendering
 * the worker did before schema v2 (it shipped the 256-px result), moved to where the objects are made.
 * Every size comes from the message, so every size is checked before anything is allocated.
 */
public final class CamMaps {

    /** Longer side of the heatmap grid, pixels; a smaller working image keeps its own size. */
    public static final int MAX_SIDE = 256;
    /** Larger than any feature map (7 for DenseNet-121 at 224); bounds a hostile message's allocation. */
    static final int MAX_FEATURE_SIDE = 1024;

    /** A heatmap on its grid: row-major 0..255 activation, {@code width*height} bytes. */
    public record Grid(byte[] values, int width, int height) {
    }

    private CamMaps() {
    }

    /** The heatmap of a finding's activation over a working image of {@code workingW x workingH}. */
    public static Grid render(ActivationMap a, int workingW, int workingH) throws ReportException {
        int fw = a.getWidth();
        int fh = a.getHeight();
        List<Float> values = a.getValues();
        if (fw <= 0 || fh <= 0 || fw > MAX_FEATURE_SIDE || fh > MAX_FEATURE_SIDE || values == null
                || values.size() != fw * fh) {
            throw new ReportException("activation map is " + (values == null ? 0 : values.size()) + " values for "
                    + fw + "x" + fh);
        }
        if (workingW <= 0 || workingH <= 0 || a.getRegionX() < 0 || a.getRegionY() < 0 || a.getRegionWidth() <= 0
                || a.getRegionHeight() <= 0 || (long) a.getRegionX() + a.getRegionWidth() > workingW
                || (long) a.getRegionY() + a.getRegionHeight() > workingH) {
            throw new ReportException("activation map region " + a.getRegionX() + "," + a.getRegionY() + " "
                    + a.getRegionWidth() + "x" + a.getRegionHeight() + " is outside the " + workingW + "x" + workingH
                    + " working image");
        }
        float[] raw = new float[values.size()];
        for (int i = 0; i < raw.length; i++) {
            float v = values.get(i);
            if (!Float.isFinite(v)) {
                throw new ReportException("activation map holds " + v);
            }
            raw[i] = v;
        }
        double scale = Math.min(1.0, (double) MAX_SIDE / Math.max(workingW, workingH));
        int w = Math.max(1, (int) Math.round(workingW * scale));
        int h = Math.max(1, (int) Math.round(workingH * scale));
        int cx = Math.min(w - 1, (int) Math.round(a.getRegionX() * scale));
        int cy = Math.min(h - 1, (int) Math.round(a.getRegionY() * scale));
        int cw = Math.max(1, Math.min(w - cx, (int) Math.round(a.getRegionWidth() * scale)));
        int ch = Math.max(1, Math.min(h - cy, (int) Math.round(a.getRegionHeight() * scale)));
        byte[] region = GradCam.toBytes(GradCam.upsampleNormalised(raw, fh, fw, ch, cw));
        byte[] grid = new byte[w * h];
        for (int y = 0; y < ch; y++) {
            System.arraycopy(region, y * cw, grid, (cy + y) * w + cx, cw);
        }
        return new Grid(grid, w, h);
    }
}
