package org.cxrgateway.xai;

/**
 * Bilinear resampling with exactly the semantics of PyTorch's
 * {@code F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=False)}:
 * source = (dst + 0.5) * in / out - 0.5, clamped at 0, neighbours clamped at the edge. Used both for
 * model preprocessing and for upsampling CAMs, so that both match the Python reference pipeline.
 */
public final class Bilinear {

    private Bilinear() {
    }

    /** Resizes a row-major single-channel image src (h x w) into dst (oh x ow) starting at dstOffset. */
    public static void resize(float[] src, int srcOffset, int h, int w, int srcStride,
                              float[] dst, int dstOffset, int oh, int ow) {
        float sy = (float) h / oh;
        float sx = (float) w / ow;
        int[] x0 = new int[ow];
        int[] x1 = new int[ow];
        float[] lx = new float[ow];
        for (int x = 0; x < ow; x++) {
            float s = Math.max(sx * (x + 0.5f) - 0.5f, 0f);
            int i = (int) s;
            x0[x] = i;
            x1[x] = i < w - 1 ? i + 1 : i;
            lx[x] = s - i;
        }
        for (int y = 0; y < oh; y++) {
            float s = Math.max(sy * (y + 0.5f) - 0.5f, 0f);
            int i = (int) s;
            int j = i < h - 1 ? i + 1 : i;
            float ly = s - i;
            float hy = 1f - ly;
            int r0 = srcOffset + i * srcStride;
            int r1 = srcOffset + j * srcStride;
            int o = dstOffset + y * ow;
            for (int x = 0; x < ow; x++) {
                float l = lx[x];
                float hl = 1f - l;
                dst[o + x] = hy * (hl * src[r0 + x0[x]] + l * src[r0 + x1[x]])
                        + ly * (hl * src[r1 + x0[x]] + l * src[r1 + x1[x]]);
            }
        }
    }
}
