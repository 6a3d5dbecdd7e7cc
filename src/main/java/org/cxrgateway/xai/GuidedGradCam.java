package org.cxrgateway.xai;

import java.util.zip.Deflater;

/**
 * Guided Grad-CAM (Selvaraju et al. 2017): the guided-backpropagation gradient d logit_c / d input
 * (computed by the package's guided graph in ONNX Runtime) times the Grad-CAM upsampled bilinearly to the
 * model input. The input channels are reduced by summing them: the gateway's 3-channel inputs are one grey
 * working image replicated, so by the chain rule the sum is the derivative with respect to that grey value
 * (up to the per-channel normalisation scales, equal to within 3 % for ImageNet's std); 1-channel inputs are
 * unchanged. The result is signed: positive = evidence for the class.
 */
public final class GuidedGradCam {

    /** An encoded map: values = round(127 v / maxAbs) as signed bytes, zlib-deflated (the GuidedMap message). */
    public record Encoded(float maxAbs, byte[] deflated) {
    }

    private GuidedGradCam() {
    }

    /**
     * gradient holds [K, C, size, size]; k selects the class; cam is the raw Grad-CAM [fh, fw] (ReLU'd, any
     * scale). Returns [size, size] row-major.
     */
    public static float[] combine(float[] gradient, int k, int channels, int size, float[] cam, int fh, int fw) {
        int plane = size * size;
        float[] up = new float[plane];
        Bilinear.resize(cam, 0, fh, fw, fw, up, 0, size, size);
        float[] out = new float[plane];
        int base = k * channels * plane;
        for (int c = 0; c < channels; c++) {
            int o = base + c * plane;
            for (int p = 0; p < plane; p++) {
                out[p] += gradient[o + p];
            }
        }
        for (int p = 0; p < plane; p++) {
            out[p] *= up[p];
        }
        return out;
    }

    /** Quantises to signed bytes of the largest magnitude and deflates; an all-zero map keeps maxAbs 0 and zero bytes. */
    public static Encoded encode(float[] map) {
        float maxAbs = 0;
        for (float v : map) {
            maxAbs = Math.max(maxAbs, Math.abs(v));
        }
        byte[] q = new byte[map.length];
        if (maxAbs > 0 && Float.isFinite(maxAbs)) {
            for (int i = 0; i < q.length; i++) {
                q[i] = (byte) Math.round(127f * map[i] / maxAbs);
            }
        }
        return new Encoded(maxAbs, org.cxrgateway.message.WorkingImagePixels.deflate(q, Deflater.BEST_SPEED));
    }
}
