package org.cxrgateway.xai;

/**
 * Exact Grad-CAM for a network whose head is ReLU -> global average pooling -> linear (DenseNet):
 * d logit_c / d A_k(i,j) = W[c,k] / (H*W) for every position, so the Grad-CAM weights
 * alpha_k = W[c,k] / (H*W) and Grad-CAM = ReLU(sum_k alpha_k A_k) needs no backward pass; A is the
 * post-ReLU feature map the head pools. For softmax models the same rule is applied to the class
 * logit (the usual Grad-CAM target), not to the probability.
 */
public final class GradCam {

    private GradCam() {
    }

    /**
     * The raw map at feature resolution. features holds [C, H, W] for one image starting at offset;
     * weightRow is W[c, :] of length C.
     */
    public static float[] map(float[] features, int offset, int channels, int h, int w, float[] weightRow) {
        int hw = h * w;
        double[] acc = new double[hw];
        for (int k = 0; k < channels; k++) {
            double a = weightRow[k];
            if (a == 0) {
                continue;
            }
            int base = offset + k * hw;
            for (int p = 0; p < hw; p++) {
                acc[p] += a * features[base + p];
            }
        }
        float[] cam = new float[hw];
        double norm = 1.0 / hw;
        for (int p = 0; p < hw; p++) {
            cam[p] = (float) Math.max(acc[p] * norm, 0.0);
        }
        return cam;
    }

    /** Upsamples a map bilinearly (PyTorch align_corners=False) and min-max normalises it to [0, 1]; a flat map becomes all zeros. */
    public static float[] upsampleNormalised(float[] cam, int h, int w, int oh, int ow) {
        float[] up = new float[oh * ow];
        Bilinear.resize(cam, 0, h, w, w, up, 0, oh, ow);
        minMax(up);
        return up;
    }

    /** In place: (x - min) / (max - min), or zeros when max == min. */
    public static void minMax(float[] v) {
        float min = Float.POSITIVE_INFINITY, max = Float.NEGATIVE_INFINITY;
        for (float x : v) {
            min = Math.min(min, x);
            max = Math.max(max, x);
        }
        float range = max - min;
        for (int i = 0; i < v.length; i++) {
            v[i] = range > 0 ? (v[i] - min) / range : 0f;
        }
    }

    /** [0, 1] to 0..255, rounded. */
    public static byte[] toBytes(float[] normalised) {
        byte[] out = new byte[normalised.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) Math.round(Math.min(Math.max(normalised[i], 0f), 1f) * 255f);
        }
        return out;
    }
}
