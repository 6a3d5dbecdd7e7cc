package org.cxrgateway.inference;

import org.cxrgateway.queue.WorkingImagePixels;

import org.cxrgateway.schema.v1.PixelEncoding;
import org.cxrgateway.schema.v1.WorkingImage;
import org.cxrgateway.xai.Bilinear;


/**
 * Working image -> model input tensor. The reference pipeline (src/main/python/reference.py, used
 * by the fidelity test) is, precisely:
 * <ol>
 * <li>x = pixel / (2^bitsPerPixel - 1), float32, 0 = black;</li>
 * <li>crop: center = the largest centred square, top-left at ((w - s) / 2, (h - s) / 2) with integer
 *     division, s = min(w, h); resize = the whole image; none = the whole image, which must already
 *     be size x size;</li>
 * <li>F.interpolate(x, (size, size), mode="bilinear", align_corners=False, antialias=False);</li>
 * <li>imagenet: 3 channels, (x - mean[c]) / std[c], mean (0.485, 0.456, 0.406), std (0.229, 0.224,
 *     0.225); xrv: 1 channel, x * 2048 - 1024.</li>
 * </ol>
 */
public final class Preprocessor {

    private static final float[] MEAN = {0.485f, 0.456f, 0.406f};
    private static final float[] STD = {0.229f, 0.224f, 0.225f};

    /** The region of the working image that the model sees. */
    public record Crop(int x, int y, int width, int height) {
    }

    private final int size;
    private final int channels;
    private final String crop;
    private final boolean xrv;

    public Preprocessor(ModelManifest m) {
        this.size = m.input().size();
        this.channels = m.input().channels();
        this.crop = m.preprocessing().crop();
        this.xrv = "xrv".equals(m.preprocessing().normalisation());
    }

    public int tensorLength() {
        return channels * size * size;
    }

    public Crop crop(int w, int h) {
        switch (crop) {
            case "center" -> {
                int s = Math.min(w, h);
                return new Crop((w - s) / 2, (h - s) / 2, s, s);
            }
            case "none" -> {
                if (w != size || h != size) {
                    throw new IllegalArgumentException("image is " + w + "x" + h + " but preprocessing.crop none needs " + size + "x" + size);
                }
                return new Crop(0, 0, w, h);
            }
            default -> {
                return new Crop(0, 0, w, h);
            }
        }
    }

    /** Writes the [C, size, size] tensor of one image into out at offset. */
    public void apply(float[] gray, int w, int h, float[] out, int offset) {
        Crop c = crop(w, h);
        int plane = size * size;
        Bilinear.resize(gray, c.y() * w + c.x(), c.height(), c.width(), w, out, offset, size, size);
        if (xrv) {
            for (int i = offset; i < offset + plane; i++) {
                out[i] = out[i] * 2048f - 1024f;
            }
            return;
        }
        for (int ch = channels - 1; ch >= 0; ch--) {
            int o = offset + ch * plane;
            for (int i = 0; i < plane; i++) {
                out[o + i] = (out[offset + i] - MEAN[ch]) / STD[ch];
            }
        }
    }

    /** Decodes a WorkingImage to floats in [0, 1]; throws IllegalArgumentException on a malformed one. */
    public static float[] decode(WorkingImage img) {
        byte[] px = WorkingImagePixels.decode(img);
        int bits = img.getBitsPerPixel();
        int n = img.getWidth() * img.getHeight();
        float[] out = new float[n];
        if (bits == 8) {
            for (int i = 0; i < n; i++) {
                out[i] = (px[i] & 0xff) / 255f;
            }
        } else {
            for (int i = 0; i < n; i++) {
                out[i] = ((px[2 * i] & 0xff) | (px[2 * i + 1] & 0xff) << 8) / 65535f;
            }
        }
        return out;
    }
}
