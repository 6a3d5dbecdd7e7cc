package org.cxrgateway.ingest;

import org.cxrgateway.message.WorkingImagePixels;

import org.cxrgateway.dicom.PixelFrame;
import org.cxrgateway.schema.v2.PixelEncoding;
import org.cxrgateway.schema.v2.WorkingImage;

/**
 * Renders a stored grayscale frame into a display-ready working image: Modality LUT (rescale), then
 * the VOI LUT, else the first window (VOI LUT Function LINEAR, LINEAR_EXACT or SIGMOID), else a
 * robust default window (0.5th to 99.5th percentile of the stored values); MONOCHROME1 inverted so
 * that 0 is black; area-averaged down to the working size; quantised to 8 or 16 bits.
 * DEFLATE payloads are zlib streams (RFC 1950, java.util.zip.Inflater with default settings).
 */
public final class WorkingImageDecoder {

    /** Percentiles of the robust default window (no VOI LUT and no window in the header). */
    static final double LOW_PERCENTILE = 0.5;
    static final double HIGH_PERCENTILE = 99.5;

    private final int longSide;
    private final int bitsPerPixel;
    /**
     * How a working image's pixels go into the job ({@code cxr.assembly.pixel-encoding}). AUTO: as they are when
     * they fit max-payload-bytes, zlib only when they do not. The worker inflates every DEFLATE image before it
     * preprocesses it, and zlib inflates an 8-bit radiograph at about 180-250 MB/s whatever its noise (4.3-5.9 ms
     * for a 1024x1024 image on the development machine's Zen 3 core, against 1.3-1.6 ms for a noiseless one): more
     * host time per image than the preprocessing itself, taken from the two cores the engine runs on. Compression gains
     * little on such pixels (ratio 1.1-2 with sensor noise of 1-25 levels), so it is kept for the images it lets
     * stay at full working size: those whose raw pixels would not fit (a square 1024x1024 detector image is
     * 1,048,576 bytes).
     */
    public enum Encoding {
        RAW, DEFLATE, AUTO
    }

    private final Encoding encoding;
    private final int maxPayloadBytes;

    public WorkingImageDecoder(int longSide, int bitsPerPixel, Encoding encoding, int maxPayloadBytes) {
        if (bitsPerPixel != 8 && bitsPerPixel != 16) {
            throw new IllegalArgumentException("bitsPerPixel must be 8 or 16, not " + bitsPerPixel);
        }
        if (longSide < 16) {
            throw new IllegalArgumentException("working long side too small: " + longSide);
        }
        this.longSide = longSide;
        this.bitsPerPixel = bitsPerPixel;
        this.encoding = encoding;
        this.maxPayloadBytes = maxPayloadBytes;
    }

    public WorkingImage decode(PixelFrame frame) {
        float[] display = render(frame);
        int side = longSide;
        while (true) {
            double scale = Math.min(1.0, side / (double) Math.max(frame.rows(), frame.columns()));
            int w = Math.max(1, (int) Math.round(frame.columns() * scale));
            int h = Math.max(1, (int) Math.round(frame.rows() * scale));
            float[] resized = (w == frame.columns() && h == frame.rows())
                    ? display : resize(display, frame.columns(), frame.rows(), w, h);
            WorkingImage image = encode(w, h, bitsPerPixel, quantise(resized), encoding, maxPayloadBytes);
            if (image.getPixels().remaining() <= maxPayloadBytes || side <= 64) {
                return image;
            }
            // Too big (incompressible content or 16-bit RAW): shrink until it fits.
            side = (int) (Math.max(w, h) * 0.9);
        }
    }

    /** The pixels as the policy puts them into a job: AUTO compresses only those whose raw bytes exceed maxPayloadBytes. */
    public static WorkingImage encode(int w, int h, int bitsPerPixel, byte[] raw, Encoding encoding, int maxPayloadBytes) {
        PixelEncoding e = switch (encoding) {
            case RAW -> PixelEncoding.RAW;
            case DEFLATE -> PixelEncoding.DEFLATE;
            case AUTO -> raw.length <= maxPayloadBytes ? PixelEncoding.RAW : PixelEncoding.DEFLATE;
        };
        return WorkingImagePixels.encode(w, h, bitsPerPixel, raw, e);
    }

    /** Display values in [0, 1] at source resolution, 0 = black. */
    static float[] render(PixelFrame f) {
        int[] s = f.stored();
        int n = s.length;
        float[] out = new float[n];
        double slope = f.rescaleSlope();
        double intercept = f.rescaleIntercept();
        PixelFrame.Lut lut = f.voiLut();
        if (lut != null && lut.data().length > 0) {
            int[] data = lut.data();
            double max = (1 << Math.max(1, Math.min(16, lut.bits()))) - 1;
            int last = data.length - 1;
            for (int i = 0; i < n; i++) {
                double m = s[i] * slope + intercept;
                int index = m < lut.firstMapped() ? 0 : (int) Math.min(last, (long) (m - lut.firstMapped()));
                out[i] = (float) Math.min(1.0, data[index] / max);
            }
        } else if (f.hasWindow()) {
            double c = f.windowCenter();
            double w = f.windowWidth();
            String function = f.voiLutFunction() == null ? "LINEAR" : f.voiLutFunction().trim().toUpperCase();
            for (int i = 0; i < n; i++) {
                out[i] = (float) window(s[i] * slope + intercept, c, w, function);
            }
        } else {
            int[] bounds = percentiles(s, LOW_PERCENTILE, HIGH_PERCENTILE);
            double a = bounds[0] * slope + intercept;
            double b = bounds[1] * slope + intercept;
            double lo = Math.min(a, b);
            double range = Math.abs(b - a);
            for (int i = 0; i < n; i++) {
                double m = s[i] * slope + intercept;
                out[i] = range <= 0 ? 0f : (float) clamp01((m - lo) / range);
            }
        }
        if (f.isMonochrome1()) {
            for (int i = 0; i < n; i++) {
                out[i] = 1f - out[i];
            }
        }
        return out;
    }

    /** PS3.3 C.11.2.1.2 (LINEAR), C.11.2.1.3.2 (LINEAR_EXACT), C.11.2.1.3.1 (SIGMOID), output in [0, 1]. */
    static double window(double x, double c, double w, String function) {
        switch (function) {
            case "SIGMOID":
                return 1.0 / (1.0 + Math.exp(-4.0 * (x - c) / w));
            case "LINEAR_EXACT":
                if (x <= c - w / 2) {
                    return 0;
                }
                if (x > c + w / 2) {
                    return 1;
                }
                return (x - c) / w + 0.5;
            default:
                if (w <= 1) {
                    return x <= c - 0.5 ? 0 : 1;
                }
                if (x <= c - 0.5 - (w - 1) / 2) {
                    return 0;
                }
                if (x > c - 0.5 + (w - 1) / 2) {
                    return 1;
                }
                return (x - (c - 0.5)) / (w - 1) + 0.5;
        }
    }

    /** Percentiles by the "lower" rule: the sorted value at index floor(p / 100 * (n - 1)). */
    static int[] percentiles(int[] values, double pLow, double pHigh) {
        int min = Integer.MAX_VALUE;
        int max = Integer.MIN_VALUE;
        for (int v : values) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        int[] counts = new int[max - min + 1];
        for (int v : values) {
            counts[v - min]++;
        }
        long n = values.length;
        long kLow = (long) Math.floor(pLow / 100.0 * (n - 1));
        long kHigh = (long) Math.floor(pHigh / 100.0 * (n - 1));
        int lo = min;
        int hi = max;
        long seen = 0;
        boolean loFound = false;
        for (int i = 0; i < counts.length; i++) {
            seen += counts[i];
            if (!loFound && seen > kLow) {
                lo = i + min;
                loFound = true;
            }
            if (seen > kHigh) {
                hi = i + min;
                break;
            }
        }
        return new int[] {lo, hi};
    }

    /**
     * Area-average resampling: every source pixel contributes by the fraction of it an output pixel
     * covers, also for non-integer factors. Equal within one grey level to OpenCV's
     * cv2.resize(INTER_AREA), the reference of WorkingImageDecoderTest (PIL's BOX filter is not the same:
     * it weighs whole pixels).
     */
    static float[] resize(float[] src, int sw, int sh, int dw, int dh) {
        float[] horizontal = new float[dw * sh];
        Weights wx = Weights.of(sw, dw);
        for (int y = 0; y < sh; y++) {
            int row = y * sw;
            for (int x = 0; x < dw; x++) {
                double acc = 0;
                for (int k = wx.start[x]; k < wx.start[x] + wx.count[x]; k++) {
                    acc += src[row + wx.index[k]] * wx.weight[k];
                }
                horizontal[y * dw + x] = (float) acc;
            }
        }
        float[] out = new float[dw * dh];
        Weights wy = Weights.of(sh, dh);
        for (int y = 0; y < dh; y++) {
            for (int x = 0; x < dw; x++) {
                double acc = 0;
                for (int k = wy.start[y]; k < wy.start[y] + wy.count[y]; k++) {
                    acc += horizontal[wy.index[k] * dw + x] * wy.weight[k];
                }
                out[y * dw + x] = (float) acc;
            }
        }
        return out;
    }

    private static final class Weights {
        int[] start;
        int[] count;
        int[] index;
        double[] weight;

        static Weights of(int srcLen, int dstLen) {
            Weights w = new Weights();
            w.start = new int[dstLen];
            w.count = new int[dstLen];
            double ratio = srcLen / (double) dstLen;
            int cap = (int) Math.ceil(ratio) + 2;
            w.index = new int[dstLen * cap];
            w.weight = new double[dstLen * cap];
            int k = 0;
            for (int d = 0; d < dstLen; d++) {
                double a = d * ratio;
                double b = Math.min(srcLen, (d + 1) * ratio);
                w.start[d] = k;
                for (int s = (int) Math.floor(a); s < b && s < srcLen; s++) {
                    double cover = Math.min(b, s + 1) - Math.max(a, s);
                    if (cover > 0) {
                        w.index[k] = s;
                        w.weight[k] = cover / (b - a);
                        k++;
                    }
                }
                w.count[d] = k - w.start[d];
            }
            return w;
        }
    }

    private byte[] quantise(float[] v) {
        if (bitsPerPixel == 8) {
            byte[] out = new byte[v.length];
            for (int i = 0; i < v.length; i++) {
                out[i] = (byte) Math.round(clamp01(v[i]) * 255.0);
            }
            return out;
        }
        byte[] out = new byte[v.length * 2];
        for (int i = 0; i < v.length; i++) {
            int q = (int) Math.round(clamp01(v[i]) * 65535.0);
            out[2 * i] = (byte) q;
            out[2 * i + 1] = (byte) (q >>> 8);
        }
        return out;
    }

    private static double clamp01(double v) {
        return v < 0 ? 0 : (v > 1 ? 1 : v);
    }
}
