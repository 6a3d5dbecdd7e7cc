package org.cxrgateway.inference;

import java.util.Arrays;

/**
 * The classifier head of a package over its feature map A [C, H, W] (outputs.features), run on the host so that
 * Grad-CAM needs the feature map alone: forward to the logits, back to d logit_c / d A, and the Grad-CAM weights
 * alpha_k = mean over positions of d logit_c / d A_k (Selvaraju et al.).
 * <ul>
 * <li>linear over global-average-pooled features (DenseNet, ResNet, torchvision classifiers): d logit_c / d A_k(i, j)
 * = W[c, k] / HW at every position, so alpha needs no pass and Grad-CAM is CAM;</li>
 * <li>mlp over pooled features (ResNet50+: GAP + Dense(32) + Dense(32) + output) or over flattened features (VGG):
 * one forward (the hidden ReLU masks) and one backward per image and class, a few tens of thousands of
 * multiply-adds for ResNet50+.</li>
 * </ul>
 * Layer weights are [out][in] as torch Linear holds them. Immutable; safe to share.
 */
public final class ClassifierHead {

    private final float[][][] weight; // per layer [out][in]
    private final float[][] bias;     // per layer [out]; null entries: no bias
    private final boolean[] relu;     // per layer: ReLU after it
    private final boolean flatten;
    private final int channels, hw;

    ClassifierHead(float[][][] weight, float[][] bias, boolean[] relu, boolean flatten, int channels, int hw) {
        this.weight = weight;
        this.bias = bias;
        this.relu = relu;
        this.flatten = flatten;
        this.channels = channels;
        this.hw = hw;
    }

    /** A linear head over GAP features: weight [labels][C], bias [labels] or null. */
    static ClassifierHead linear(float[][] weight, float[] bias, int channels, int hw) {
        return new ClassifierHead(new float[][][]{weight}, new float[][]{bias}, new boolean[]{false}, false, channels, hw);
    }

    /** True for one layer over GAP features, where the Grad-CAM row is the weight row itself. */
    public boolean linear() {
        return weight.length == 1 && !flatten;
    }

    public boolean flatten() {
        return flatten;
    }

    public int layers() {
        return weight.length;
    }

    /** The width of the first layer's input: C (pooled) or C*H*W (flattened). */
    public int inputs() {
        return flatten ? channels * hw : channels;
    }

    public int labels() {
        return weight[weight.length - 1].length;
    }

    /** The last layer's weight [labels][in]; for a linear head, W of Grad-CAM = CAM. */
    public float[][] lastWeight() {
        return weight[weight.length - 1];
    }

    public float[] lastBias() {
        return bias[bias.length - 1];
    }

    /** The logits of one image whose features [C, H, W] start at offset. */
    public float[] logits(float[] features, int offset) {
        double[] x = input(features, offset);
        for (int l = 0; l < weight.length; l++) {
            x = layer(l, x);
            if (relu[l]) {
                for (int j = 0; j < x.length; j++) {
                    x[j] = Math.max(x[j], 0);
                }
            }
        }
        float[] out = new float[x.length];
        for (int j = 0; j < x.length; j++) {
            out[j] = (float) x[j];
        }
        return out;
    }

    /**
     * The Grad-CAM weights of class cls for one image, times H*W: the row r for which
     * xai.GradCam.map(features, offset, C, H, W, r) = ReLU(sum_k alpha_k A_k). A linear head gives W[cls] (no pass).
     */
    public float[] camRow(float[] features, int offset, int cls) {
        if (linear()) {
            return weight[0][cls];
        }
        // forward, keeping each hidden layer's pre-activation for its ReLU mask
        double[][] pre = new double[weight.length][];
        double[] x = input(features, offset);
        for (int l = 0; l < weight.length - 1; l++) {
            pre[l] = layer(l, x);
            x = pre[l].clone();
            if (relu[l]) {
                for (int j = 0; j < x.length; j++) {
                    x[j] = Math.max(x[j], 0);
                }
            }
        }
        // back: d logit_cls / d (last layer's input) is its weight row; then each hidden layer's ReLU mask and W^T
        float[] row = weight[weight.length - 1][cls];
        double[] g = new double[row.length];
        for (int j = 0; j < row.length; j++) {
            g[j] = row[j];
        }
        for (int l = weight.length - 2; l >= 0; l--) {
            if (relu[l]) {
                for (int j = 0; j < g.length; j++) {
                    if (!(pre[l][j] > 0)) { // torch's ReLU passes no gradient at 0
                        g[j] = 0;
                    }
                }
            }
            float[][] w = weight[l];
            double[] in = new double[w[0].length];
            for (int j = 0; j < w.length; j++) {
                double gj = g[j];
                if (gj == 0) {
                    continue;
                }
                float[] wj = w[j];
                for (int i = 0; i < in.length; i++) {
                    in[i] += gj * wj[i];
                }
            }
            g = in;
        }
        // g = d logit / d (head input). Pooled: d / d A_k(i, j) = g_k / HW everywhere, alpha_k * HW = g_k.
        // Flattened: d / d A_k(i, j) = g[k*HW + i*W + j], alpha_k * HW = its sum over positions.
        float[] out = new float[channels];
        for (int k = 0; k < channels; k++) {
            if (flatten) {
                double s = 0;
                for (int p = 0; p < hw; p++) {
                    s += g[k * hw + p];
                }
                out[k] = (float) s;
            } else {
                out[k] = (float) g[k];
            }
        }
        return out;
    }

    private double[] input(float[] features, int offset) {
        double[] x = new double[inputs()];
        if (flatten) {
            for (int i = 0; i < x.length; i++) {
                x[i] = features[offset + i];
            }
        } else {
            for (int k = 0; k < channels; k++) {
                double s = 0;
                for (int p = 0; p < hw; p++) {
                    s += features[offset + k * hw + p];
                }
                x[k] = s / hw;
            }
        }
        return x;
    }

    private double[] layer(int l, double[] x) {
        float[][] w = weight[l];
        double[] y = new double[w.length];
        for (int j = 0; j < w.length; j++) {
            float[] wj = w[j];
            double s = bias[l] == null ? 0 : bias[l][j];
            for (int i = 0; i < x.length; i++) {
                s += wj[i] * x[i];
            }
            y[j] = s;
        }
        return y;
    }

    @Override
    public String toString() {
        int[] widths = new int[weight.length];
        for (int l = 0; l < weight.length; l++) {
            widths[l] = weight[l].length;
        }
        return (linear() ? "linear" : "mlp") + " over " + (flatten ? "flattened" : "pooled") + " features, " + inputs() + " -> " + Arrays.toString(widths);
    }
}
