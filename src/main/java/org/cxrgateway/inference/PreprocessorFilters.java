package org.cxrgateway.inference;

/**
 * The resampling filters of the upstream libraries, reproduced to their arithmetic so that a model
 * sees the tensor it was trained on. PreprocessorLibraryTest compares each with the library itself
 * (through src/main/python/cxr_preprocessing.py). Images are row-major, one plane.
 */
final class PreprocessorFilters {

    /** Pillow's fixed-point precision for 8-bit images (Resample.c: PRECISION_BITS = 32 - 8 - 2). */
    private static final int PRECISION_BITS = 22;

    private PreprocessorFilters() {
    }

    private static double bilinear(double x) {
        x = Math.abs(x);
        return x < 1.0 ? 1.0 - x : 0.0;
    }

    private static double bicubic(double x) {
        final double a = -0.5;
        x = Math.abs(x);
        if (x < 1.0) {
            return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
        }
        if (x < 2.0) {
            return (((x - 5) * x + 8) * x - 4) * a;
        }
        return 0.0;
    }

    /** Per output index: first source index, count, and normalised weights (ksize per index). */
    private record Taps(int[] start, int[] count, double[] weight, int ksize) {
    }

    /**
     * Pillow precompute_coeffs (Resample.c): center (i + 0.5) * scale, support widened by the
     * downscale factor, bounds rounded by (int)(x + 0.5), weights normalised in double.
     */
    private static Taps pilTaps(int inSize, int outSize, boolean cubic) {
        double scale = (double) ((float) inSize) / outSize;
        double filterscale = Math.max(scale, 1.0);
        double support = (cubic ? 2.0 : 1.0) * filterscale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        int[] start = new int[outSize];
        int[] count = new int[outSize];
        double[] k = new double[outSize * ksize];
        double ss = 1.0 / filterscale;
        for (int xx = 0; xx < outSize; xx++) {
            double center = (xx + 0.5) * scale;
            int xmin = Math.max(0, (int) (center - support + 0.5));
            int xmax = Math.min(inSize, (int) (center + support + 0.5)) - xmin;
            double ww = 0;
            for (int x = 0; x < xmax; x++) {
                double v = (x + xmin - center + 0.5) * ss;
                double w = cubic ? bicubic(v) : bilinear(v);
                k[xx * ksize + x] = w;
                ww += w;
            }
            if (ww != 0.0) {
                for (int x = 0; x < xmax; x++) {
                    k[xx * ksize + x] /= ww;
                }
            }
            start[xx] = xmin;
            count[xx] = Math.max(0, xmax);
        }
        return new Taps(start, count, k, ksize);
    }

    /** normalize_coeffs_8bpc: double weights to fixed point, rounded half away from zero. */
    private static int[] fixedPoint(Taps t) {
        int[] out = new int[t.weight().length];
        for (int i = 0; i < out.length; i++) {
            double v = t.weight()[i] * (1 << PRECISION_BITS);
            out[i] = v < 0 ? (int) (-0.5 + v) : (int) (0.5 + v);
        }
        return out;
    }

    /** clip8: the accumulator shifted down (floor) and clamped to 0..255. */
    private static int clip8(int acc) {
        int v = acc >> PRECISION_BITS;
        return v < 0 ? 0 : Math.min(v, 255);
    }

    /**
     * Image.resize of an 8-bit 'L' image with BILINEAR or BICUBIC (what torchvision Resize does to
     * a PIL image): horizontal pass, rounded and clipped to 8 bits, then vertical pass; a pass is
     * skipped when that side keeps its size (ImagingResampleInner).
     */
    static int[] pil(int[] src, int w, int h, int nw, int nh, boolean cubic) {
        int[] cur = src;
        int cw = w;
        if (nw != w) {
            Taps t = pilTaps(w, nw, cubic);
            int[] k = fixedPoint(t);
            int[] out = new int[nw * h];
            for (int y = 0; y < h; y++) {
                int row = y * w;
                for (int x = 0; x < nw; x++) {
                    int acc = 1 << (PRECISION_BITS - 1);
                    int base = x * t.ksize();
                    int s0 = t.start()[x];
                    for (int i = 0; i < t.count()[x]; i++) {
                        acc += cur[row + s0 + i] * k[base + i];
                    }
                    out[y * nw + x] = clip8(acc);
                }
            }
            cur = out;
            cw = nw;
        }
        if (nh != h) {
            Taps t = pilTaps(h, nh, cubic);
            int[] k = fixedPoint(t);
            int[] out = new int[cw * nh];
            for (int y = 0; y < nh; y++) {
                int base = y * t.ksize();
                int s0 = t.start()[y];
                for (int x = 0; x < cw; x++) {
                    int acc = 1 << (PRECISION_BITS - 1);
                    for (int i = 0; i < t.count()[y]; i++) {
                        acc += cur[(s0 + i) * cw + x] * k[base + i];
                    }
                    out[y * cw + x] = clip8(acc);
                }
            }
            cur = out;
        }
        return cur;
    }

    /**
     * torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True), torch
     * 1.13 CPU (_compute_weights_aa): PIL's triangle filter, widened by the downscale factor, in float.
     */
    private static Taps torchAaTaps(int inSize, int outSize) {
        double scale = (float) inSize / (float) outSize;
        double support = scale >= 1.0 ? scale : 1.0;
        double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        int[] start = new int[outSize];
        int[] count = new int[outSize];
        double[] k = new double[outSize * ksize];
        for (int i = 0; i < outSize; i++) {
            double center = scale * (i + 0.5);
            int xmin = Math.max((int) (center - support + 0.5), 0);
            int xsize = Math.min((int) (center + support + 0.5), inSize) - xmin;
            double total = 0;
            for (int j = 0; j < xsize; j++) {
                double w = bilinear((j + xmin - center + 0.5) * invscale);
                k[i * ksize + j] = w;
                total += w;
            }
            if (total != 0) {
                for (int j = 0; j < xsize; j++) {
                    k[i * ksize + j] /= total;
                }
            }
            start[i] = xmin;
            count[i] = Math.max(0, xsize);
        }
        return new Taps(start, count, k, ksize);
    }

    /** torch bilinear without antialias: source (i + 0.5) * scale - 0.5, clamped at 0, two taps. */
    private static Taps torchTaps(int inSize, int outSize) {
        double scale = (float) inSize / (float) outSize;
        int[] start = new int[outSize];
        int[] count = new int[outSize];
        double[] k = new double[outSize * 2];
        for (int i = 0; i < outSize; i++) {
            double src = Math.max(0.0, scale * (i + 0.5) - 0.5);
            int i0 = (int) src;
            double l1 = Math.min(Math.max(src - i0, 0.0), 1.0);
            start[i] = i0;
            if (i0 < inSize - 1) {
                count[i] = 2;
                k[2 * i] = 1.0 - l1;
                k[2 * i + 1] = l1;
            } else {
                count[i] = 1;
                k[2 * i] = 1.0;
            }
        }
        return new Taps(start, count, k, 2);
    }

    /**
     * Separable filtering with taps per axis, in double, one output row at a time: its vertical taps' source rows,
     * each times its weight, added along one row of accumulators (in tap order, a loop along a row that the JIT
     * vectorises, reading the source in place), then that row's horizontal gathers. Each output is 0 + the
     * products in tap order in each pass, as a textbook loop would sum them. Vertical first, so that the pass over
     * the full source width is the one that vectorises and the gathers run over the output rows only; one row at a
     * time, so that no intermediate image is allocated and the accumulators stay in the cache. Shrinking 1024 x 853
     * to 224 x 224 antialiased (~10 taps per output) took 1.25-1.53 ms against 2.68-2.74 with the horizontal pass
     * first over a whole intermediate image, a plain bilinear from 1024 x 1024 0.42-0.46 ms against 1.13-1.29
     * (medians, interleaved, 2026-12-06). The two orders agree to rounding (~1e-16).
     */
    private static double[] separable(Rows src, int w, int h, Taps tx, int nw, Taps ty, int nh) {
        int[] xStart = tx.start();
        int[] xCount = tx.count();
        double[] xWeight = tx.weight();
        int xk = tx.ksize();
        int[] yStart = ty.start();
        int[] yCount = ty.count();
        double[] yWeight = ty.weight();
        int yk = ty.ksize();
        double[] acc = new double[w];
        double[] out = new double[nw * nh];
        for (int y = 0; y < nh; y++) {
            java.util.Arrays.fill(acc, 0);
            for (int i = 0, n = yCount[y]; i < n; i++) {
                src.addScaled(yStart[y] + i, yWeight[y * yk + i], acc);
            }
            int o = y * nw;
            for (int x = 0; x < nw; x++) {
                double sum = 0;
                int s0 = xStart[x];
                int base = x * xk;
                int n = xCount[x];
                if (n == 2) { // bilinear's usual case, written out: a two-trip loop costs more than its sums
                    sum += acc[s0] * xWeight[base];
                    sum += acc[s0 + 1] * xWeight[base + 1];
                } else {
                    for (int i = 0; i < n; i++) {
                        sum += acc[s0 + i] * xWeight[base + i];
                    }
                }
                out[o + x] = sum;
            }
        }
        return out;
    }

    static double[] torch(double[] src, int w, int h, int nw, int nh, boolean antialias) {
        return torch(Rows.of(src, w), w, h, nw, nh, antialias);
    }

    /**
     * The same from the working image, read row by row as it is filtered (from its pixel bytes where it was not
     * decoded whole): no double copy of the whole image first (for a 512 x 512 image that copy was half of
     * Preprocessor.apply's time), and only the rows the vertical taps need are converted. Every float is exact as a
     * double, so the result is identical.
     */
    static double[] torch(GrayImage src, int nw, int nh, boolean antialias) {
        return torch(src::addScaledRow, src.width(), src.height(), nw, nh, antialias);
    }

    private static double[] torch(Rows src, int w, int h, int nw, int nh, boolean antialias) {
        Taps tx = antialias ? torchAaTaps(w, nw) : torchTaps(w, nw);
        Taps ty = antialias ? torchAaTaps(h, nh) : torchTaps(h, nh);
        return separable(src, w, h, tx, nw, ty, nh);
    }

    /** A row-major image whose rows {@link #separable} adds, scaled, into a row of doubles. */
    @FunctionalInterface
    private interface Rows {
        /** acc[x] += row y's value at x * k, for every x of the row. */
        void addScaled(int y, double k, double[] acc);

        static Rows of(double[] src, int w) {
            return (y, k, acc) -> {
                for (int x = 0, o = y * w; x < w; x++) {
                    acc[x] += src[o + x] * k;
                }
            };
        }
    }

    /**
     * skimage.transform.resize(order=1, mode="constant", cval=0, preserve_range=True) of skimage
     * 0.19 with SciPy >= 1.6: when any side shrinks, scipy.ndimage.gaussian_filter (sigma =
     * max(0, (factor - 1) / 2) per axis, truncate 4, mode constant 0); then ndimage.zoom order 1,
     * grid_mode (source (i + 0.5) * in / out - 0.5, grid-constant 0 beyond the edges); then the
     * output clipped to the input's range, except exact zeros when 0 lies outside that range.
     */
    static double[] skimage(double[] src, int w, int h, int nw, int nh) {
        double fy = (double) h / nh;
        double fx = (double) w / nw;
        double lo = Double.POSITIVE_INFINITY, hi = Double.NEGATIVE_INFINITY;
        for (double v : src) {
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
        }
        double[] img = src;
        if (nh < h || nw < w) {
            img = gaussian(img, w, h, Math.max(0, (fy - 1) / 2), true);
            img = gaussian(img, w, h, Math.max(0, (fx - 1) / 2), false);
        }
        Taps tx = zoomTaps(w, nw, fx);
        Taps ty = zoomTaps(h, nh, fy);
        double[] out = separable(Rows.of(img, w), w, h, tx, nw, ty, nh);
        double omin = Double.POSITIVE_INFINITY, omax = Double.NEGATIVE_INFINITY;
        for (double v : out) {
            omin = Math.min(omin, v);
            omax = Math.max(omax, v);
        }
        boolean preserveZero = !(lo <= 0 && 0 <= hi) && omin <= 0 && 0 <= omax;
        for (int i = 0; i < out.length; i++) {
            if (preserveZero && out[i] == 0) {
                continue;
            }
            out[i] = Math.min(hi, Math.max(lo, out[i]));
        }
        return out;
    }

    /** ndimage.zoom order 1, grid mode, grid-constant 0: taps outside the image get weight 0. */
    private static Taps zoomTaps(int inSize, int outSize, double zoom) {
        int[] start = new int[outSize];
        int[] count = new int[outSize];
        double[] k = new double[outSize * 2];
        for (int i = 0; i < outSize; i++) {
            double c = (i + 0.5) * zoom - 0.5;
            int i0 = (int) Math.floor(c);
            double t = c - i0;
            double w0 = 1.0 - t, w1 = t;
            if (i0 < 0) { // only w1 on pixel 0 is inside
                start[i] = 0;
                count[i] = 1;
                k[2 * i] = i0 == -1 ? w1 : 0;
            } else if (i0 >= inSize - 1) {
                start[i] = Math.min(i0, inSize - 1);
                count[i] = 1;
                k[2 * i] = i0 == inSize - 1 ? w0 : 0;
            } else {
                start[i] = i0;
                count[i] = 2;
                k[2 * i] = w0;
                k[2 * i + 1] = w1;
            }
        }
        return new Taps(start, count, k, 2);
    }

    /** scipy.ndimage.gaussian_filter1d along one axis, mode constant 0, truncate 4.0. */
    private static double[] gaussian(double[] src, int w, int h, double sigma, boolean vertical) {
        if (sigma <= 1e-15) {
            return src;
        }
        int radius = (int) (4.0 * sigma + 0.5);
        double[] k = new double[2 * radius + 1];
        double sum = 0;
        for (int i = -radius; i <= radius; i++) {
            k[i + radius] = Math.exp(-0.5 / (sigma * sigma) * i * i);
            sum += k[i + radius];
        }
        for (int i = 0; i < k.length; i++) {
            k[i] /= sum;
        }
        double[] out = new double[src.length];
        int len = vertical ? h : w;
        for (int line = 0; line < (vertical ? w : h); line++) {
            int base = vertical ? line : line * w;
            int stride = vertical ? w : 1;
            for (int p = 0; p < len; p++) {
                double acc = 0;
                int a = Math.max(-radius, -p), b = Math.min(radius, len - 1 - p);
                for (int d = a; d <= b; d++) {
                    acc += src[base + (p + d) * stride] * k[d + radius];
                }
                out[base + p * stride] = acc;
            }
        }
        return out;
    }
}
