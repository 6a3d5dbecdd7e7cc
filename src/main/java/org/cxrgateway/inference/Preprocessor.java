package org.cxrgateway.inference;

import org.cxrgateway.schema.v2.WorkingImage;

import java.util.ArrayList;
import java.util.List;

/**
 * Working image -> model input tensor, by the package's preprocessing spec.
 *
 * <p>formatVersion 2: the ordered steps of the manifest, with the meaning that
 * src/main/python/cxr_preprocessing.py gives them by calling PIL, torchvision and skimage (the
 * training side uses that module; PreprocessorLibraryTest proves this class equal to it). The
 * working image starts as x = pixel / (2^bits - 1) in [0, 1]; PIL filters see it quantised to 8
 * bits, as an upstream PNG would be.
 *
 * <p>formatVersion 1 keeps its meaning exactly, as the steps: crop center = a centred square of the
 * short side, top-left ((w - s) / 2, (h - s) / 2) with integer division (resize: none; none: the
 * image must already be size x size); F.interpolate(x, (size, size), mode="bilinear",
 * align_corners=False, antialias=False); imagenet: 3 channels, (x - mean[c]) / std[c], mean (0.485,
 * 0.456, 0.406), std (0.229, 0.224, 0.225); xrv: 1 channel, x * 2048 - 1024. The fidelity test's
 * reference for it is src/test/python/fidelity_reference.py.
 */
public final class Preprocessor {

    private static final double[] IMAGENET_MEAN = {0.485, 0.456, 0.406};
    private static final double[] IMAGENET_STD = {0.229, 0.224, 0.225};

    /** The region of the working image that the model input covers. */
    public record Crop(int x, int y, int width, int height) {
    }

    private final int size;
    private final int channels;
    private final List<ModelManifest.Step> steps;
    /** formatVersion 1 crop none: the image must already be size x size. */
    private final boolean exactInput;

    public Preprocessor(ModelManifest m) {
        this.size = m.input().size();
        this.channels = m.input().channels();
        this.steps = m.formatVersion() == 1 ? stepsOfVersion1(m) : m.preprocessing().steps();
        this.exactInput = m.formatVersion() == 1 && "none".equals(m.preprocessing().crop());
    }

    /** The steps that formatVersion 1's crop + normalisation mean. */
    static List<ModelManifest.Step> stepsOfVersion1(ModelManifest m) {
        List<ModelManifest.Step> s = new ArrayList<>();
        String crop = m.preprocessing().crop();
        int size = m.input().size();
        if ("center".equals(crop)) {
            s.add(new ModelManifest.Step("center-crop", null, null, null, null, null, null, true, "floor", null, null, null, null));
        }
        s.add(new ModelManifest.Step("resize", "exact", size, null, null, "torch-bilinear", null, null, null, null, null, null, null));
        s.add(new ModelManifest.Step("channels", null, null, null, null, null, null, null, null, m.input().channels(), null, null, null));
        s.add(new ModelManifest.Step("normalize", null, null, null, null, null, null, null, null, null,
                m.preprocessing().normalisation(), null, null));
        return s;
    }

    public int tensorLength() {
        return channels * size * size;
    }

    /** Rules the schema cannot say; IllegalArgumentException names the step. */
    static void checkSteps(List<ModelManifest.Step> steps, int channels, int size) {
        boolean normalized = false;
        int count = 1;
        Integer last = null; // the side fixed by the last geometric step, null if it depends on the image
        for (int i = 0; i < steps.size(); i++) {
            ModelManifest.Step s = steps.get(i);
            String where = "steps[" + i + "] (" + s.op() + ")";
            switch (s.op()) {
                case "resize" -> {
                    if (s.filter().startsWith("pil-") && normalized) {
                        throw new IllegalArgumentException(where + ": PIL filters work on the 8-bit image, so they come before normalize");
                    }
                    if ("exact".equals(s.to())) {
                        int w = s.size() != null ? s.size() : s.width();
                        int h = s.size() != null ? s.size() : s.height();
                        last = w == h ? Integer.valueOf(w) : Integer.valueOf(-1);
                    } else {
                        last = null;
                    }
                }
                case "center-crop" -> last = s.size();
                case "channels" -> count = s.count();
                case "normalize" -> {
                    if (normalized) {
                        throw new IllegalArgumentException(where + ": normalize twice");
                    }
                    normalized = true;
                    if ("fixed".equals(s.kind())) {
                        for (List<Double> v : List.of(s.mean(), s.std())) {
                            if (v.size() != 1 && v.size() != count) {
                                throw new IllegalArgumentException(where + ": mean and std need 1 or " + count + " values");
                            }
                        }
                    }
                }
                default -> throw new IllegalArgumentException(where + ": unknown op");
            }
        }
        if (!normalized) {
            throw new IllegalArgumentException("no normalize step");
        }
        if (count != channels) {
            throw new IllegalArgumentException("the steps make " + count + " channel(s), input.channels is " + channels);
        }
        if (last == null || last != size) {
            throw new IllegalArgumentException("the last resize or crop must make the input " + size + "x" + size
                    + " whatever the image (an exact resize or a center-crop of that size)");
        }
    }

    /** Geometry of the steps on a w x h image: output side and the working-image region it covers. */
    private final class Walk {
        int w, h;
        double rx, ry, rw, rh;

        Walk(int w, int h) {
            this.w = w;
            this.h = h;
            this.rw = w;
            this.rh = h;
        }

        int[] resized(ModelManifest.Step s) {
            if ("exact".equals(s.to())) {
                return s.size() != null ? new int[]{s.size(), s.size()} : new int[]{s.width(), s.height()};
            }
            boolean wShort = w <= h;
            int sh = wShort ? w : h, lg = wShort ? h : w;
            int ns, nl;
            if ("short-side".equals(s.to())) {
                ns = s.size();
                nl = (int) ((double) s.size() * lg / sh);
            } else {
                nl = s.size();
                ns = (int) ((double) s.size() * sh / lg);
            }
            if (ns < 1 || nl < 1) {
                throw new IllegalArgumentException("image " + w + "x" + h + " is too thin to resize");
            }
            return wShort ? new int[]{ns, nl} : new int[]{nl, ns};
        }

        /** x0, y0, side of a center-crop on the current image. */
        int[] crop(ModelManifest.Step s) {
            int side;
            if (s.size() != null) {
                side = s.size();
            } else if (s.fraction() != null) {
                side = (int) (s.fraction() * Math.min(w, h));
            } else {
                side = Math.min(w, h);
            }
            if (side > w || side > h || side < 1) {
                throw new IllegalArgumentException("image is " + w + "x" + h + " at a center-crop of " + side + "x" + side);
            }
            String off = s.offset() == null ? "torchvision" : s.offset();
            return switch (off) {
                case "floor" -> new int[]{(w - side) / 2, (h - side) / 2, side};
                case "xrv" -> new int[]{w / 2 - side / 2, h / 2 - side / 2, side};
                default -> new int[]{(int) Math.rint((w - side) / 2.0), (int) Math.rint((h - side) / 2.0), side};
            };
        }

        void afterResize(int[] n) {
            w = n[0];
            h = n[1];
        }

        void afterCrop(int[] c) {
            double sx = rw / w, sy = rh / h;
            rx += c[0] * sx;
            ry += c[1] * sy;
            rw = c[2] * sx;
            rh = c[2] * sy;
            w = c[2];
            h = c[2];
        }
    }

    /** The working-image rectangle covered by the model input; IllegalArgumentException if the image does not fit. */
    public Crop crop(int w, int h) {
        if (exactInput && (w != size || h != size)) {
            throw new IllegalArgumentException("image is " + w + "x" + h + " but preprocessing.crop none needs " + size + "x" + size);
        }
        Walk g = new Walk(w, h);
        for (ModelManifest.Step s : steps) {
            switch (s.op()) {
                case "resize" -> g.afterResize(g.resized(s));
                case "center-crop" -> g.afterCrop(g.crop(s));
                default -> {
                }
            }
        }
        if (g.w != size || g.h != size) {
            throw new IllegalArgumentException("image " + w + "x" + h + " becomes " + g.w + "x" + g.h + ", the model needs " + size + "x" + size);
        }
        int x0 = (int) Math.round(g.rx), y0 = (int) Math.round(g.ry);
        int cw = Math.max(1, Math.min(w - x0, (int) Math.round(g.rw)));
        int ch = Math.max(1, Math.min(h - y0, (int) Math.round(g.rh)));
        return new Crop(x0, y0, cw, ch);
    }

    /** Writes the [C, size, size] tensor of one image (gray in [0, 1], row-major w x h) into out at offset. */
    public void apply(float[] gray, int w, int h, float[] out, int offset) {
        apply(GrayImage.of(gray, w, h), out, offset);
    }

    /** Writes the [C, size, size] tensor of one image into out at offset. */
    public void apply(GrayImage image, float[] out, int offset) {
        int w = image.width(), h = image.height();
        crop(w, h); // geometry first: a clear error before any work
        Walk g = new Walk(w, h);
        int[] u8 = null;          // the 8-bit image while PIL steps may follow
        double[][] planes = null; // float planes from the first float step on
        int count = 1;
        for (int si = 0; si < steps.size(); si++) {
            ModelManifest.Step s = steps.get(si);
            switch (s.op()) {
                case "resize" -> {
                    int[] n = g.resized(s);
                    boolean torch = s.filter().startsWith("torch-");
                    boolean antialias = "torch-bilinear-antialias".equals(s.filter());
                    if (s.filter().startsWith("pil-")) {
                        if (u8 == null) {
                            u8 = planes == null ? quantise(image.pixels()) : quantise(planes[0]);
                            planes = null;
                        }
                        u8 = PreprocessorFilters.pil(u8, g.w, g.h, n[0], n[1], "pil-bicubic".equals(s.filter()));
                    } else if (planes == null && u8 == null && torch) {
                        // straight from the working image's rows: no decoded or double copy of all of it first
                        planes = new double[][]{PreprocessorFilters.torch(image, n[0], n[1], antialias)};
                    } else {
                        if (planes == null) {
                            planes = new double[][]{toDouble(image, u8)};
                            u8 = null;
                        }
                        for (int p = 0; p < planes.length; p++) {
                            planes[p] = torch
                                    ? PreprocessorFilters.torch(planes[p], g.w, g.h, n[0], n[1], antialias)
                                    : PreprocessorFilters.skimage(planes[p], g.w, g.h, n[0], n[1]);
                        }
                    }
                    g.afterResize(n);
                }
                case "center-crop" -> {
                    int[] c = g.crop(s);
                    if (planes == null && u8 == null) {
                        planes = new double[][]{toDouble(image, null)}; // a later PIL step re-quantises it exactly
                    }
                    if (planes == null) {
                        u8 = cropInts(u8, g.w, c);
                    } else {
                        for (int p = 0; p < planes.length; p++) {
                            planes[p] = cropDoubles(planes[p], g.w, c);
                        }
                    }
                    g.afterCrop(c);
                }
                case "channels" -> {
                    count = s.count();
                    if (planes != null && planes.length > 1 && planes.length != count) {
                        planes = new double[][]{planes[0]};
                    }
                }
                default -> {
                    if (planes == null) {
                        planes = new double[][]{toDouble(image, u8)};
                        u8 = null;
                    }
                    if (si == steps.size() - 1 && normalizeInto(s, planes[0], count, out, offset)) {
                        return;
                    }
                    planes = normalize(s, planes[0], count);
                }
            }
        }
        if (planes == null) {
            planes = new double[][]{toDouble(image, u8)};
        }
        int plane = size * size;
        for (int ch = 0; ch < channels; ch++) {
            double[] src = planes[planes.length == 1 ? 0 : ch];
            int o = offset + ch * plane;
            for (int i = 0; i < plane; i++) {
                out[o + i] = (float) src[i];
            }
        }
    }

    /**
     * The model input of one image as a picture, for a person to check (score --save-model-input): the
     * normalisation undone (imagenet or fixed mean/std: x * std + mean; xrv: (x / 1024 + 1) / 2;
     * per-image standardisation has no inverse, so mean -+ 3 SD maps to black..white), clipped to [0, 1],
     * 8 bits, row-major size x size; channels interleaved (RGB) when the model takes 3, so a wrong
     * per-channel constant shows as a colour cast.
     */
    public byte[] denormalised(float[] tensor, int offset) {
        ModelManifest.Step norm = null;
        for (ModelManifest.Step s : steps) {
            if ("normalize".equals(s.op())) {
                norm = s;
            }
        }
        int plane = size * size;
        byte[] out = new byte[plane * channels];
        for (int c = 0; c < channels; c++) {
            double scale;
            double shift;
            switch (norm.kind()) {
                case "xrv" -> {
                    scale = 1.0 / 2048.0;
                    shift = 0.5;
                }
                case "per-image" -> {
                    scale = 1.0 / 6.0;
                    shift = 0.5;
                }
                default -> {
                    scale = perChannel(stdOf(norm), c);
                    shift = perChannel(meanOf(norm), c);
                }
            }
            for (int i = 0; i < plane; i++) {
                double v = tensor[offset + c * plane + i] * scale + shift;
                out[i * channels + c] = (byte) Math.round(Math.min(1.0, Math.max(0.0, v)) * 255.0);
            }
        }
        return out;
    }

    /** Side of the square model input. */
    public int size() {
        return size;
    }

    public int channels() {
        return channels;
    }

    /** The mean of an imagenet or fixed mean/std normalize step. */
    private static double[] meanOf(ModelManifest.Step s) {
        return "imagenet".equals(s.kind()) ? IMAGENET_MEAN : s.mean().stream().mapToDouble(Double::doubleValue).toArray();
    }

    private static double[] stdOf(ModelManifest.Step s) {
        return "imagenet".equals(s.kind()) ? IMAGENET_STD : s.std().stream().mapToDouble(Double::doubleValue).toArray();
    }

    /** One value for every channel, or one per channel. */
    private static double perChannel(double[] v, int c) {
        return v[v.length == 1 ? 0 : c];
    }

    private static double[][] normalize(ModelManifest.Step s, double[] x, int count) {
        switch (s.kind()) {
            case "xrv" -> {
                double[] y = new double[x.length];
                for (int i = 0; i < x.length; i++) {
                    y[i] = (2.0 * x[i] - 1.0) * 1024.0;
                }
                return new double[][]{y};
            }
            case "per-image" -> {
                double sum = 0;
                for (double v : x) {
                    sum += v;
                }
                double mean = sum / x.length;
                double ss = 0;
                for (double v : x) {
                    ss += (v - mean) * (v - mean);
                }
                double sd = Math.sqrt(ss / x.length);
                double[] y = new double[x.length];
                for (int i = 0; i < x.length; i++) {
                    y[i] = sd > 0 ? (x[i] - mean) / sd : 0;
                }
                return new double[][]{y};
            }
            default -> {
                double[] mean = meanOf(s);
                double[] std = stdOf(s);
                double[][] out = new double[count][x.length];
                for (int c = 0; c < count; c++) {
                    // times the reciprocal: a division per value was a quarter of preprocessing a 224 x 224 x 3
                    // tensor (0.15-0.17 of 0.58-0.61 ms), and the two agree to 1 ulp of a double, far below the
                    // float the tensor holds
                    double m = perChannel(mean, c), scale = 1 / perChannel(std, c);
                    for (int i = 0; i < x.length; i++) {
                        out[c][i] = (x[i] - m) * scale;
                    }
                }
                return out;
            }
        }
    }

    /**
     * A mean/std normalize that ends the steps, written straight into the tensor: the same floats as normalize and
     * the copy below make, without a plane of doubles per channel between them. False for the other kinds.
     */
    private boolean normalizeInto(ModelManifest.Step s, double[] x, int count, float[] out, int offset) {
        if ("xrv".equals(s.kind()) || "per-image".equals(s.kind())) {
            return false;
        }
        double[] mean = meanOf(s);
        double[] std = stdOf(s);
        int plane = size * size;
        for (int ch = 0; ch < channels; ch++) {
            int c = count == 1 ? 0 : ch; // the plane that the copy would take: one per channel, or the one
            double m = perChannel(mean, c), scale = 1 / perChannel(std, c);
            int o = offset + ch * plane;
            for (int i = 0; i < plane; i++) {
                out[o + i] = (float) ((x[i] - m) * scale);
            }
        }
        return true;
    }

    private static int[] quantise(float[] x) {
        int[] out = new int[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = (int) Math.round(Math.min(1.0, Math.max(0.0, x[i])) * 255.0);
        }
        return out;
    }

    private static int[] quantise(double[] x) {
        int[] out = new int[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = (int) Math.round(Math.min(1.0, Math.max(0.0, x[i])) * 255.0);
        }
        return out;
    }

    /** The 8-bit image as doubles where a PIL step made one, else the working image's values. */
    private static double[] toDouble(GrayImage image, int[] u8) {
        if (u8 != null) {
            double[] d = new double[u8.length];
            for (int i = 0; i < u8.length; i++) {
                d[i] = u8[i] / 255.0;
            }
            return d;
        }
        float[] gray = image.pixels();
        double[] d = new double[gray.length];
        for (int i = 0; i < gray.length; i++) {
            d[i] = gray[i];
        }
        return d;
    }

    private static int[] cropInts(int[] src, int w, int[] c) {
        int s = c[2];
        int[] out = new int[s * s];
        for (int y = 0; y < s; y++) {
            System.arraycopy(src, (c[1] + y) * w + c[0], out, y * s, s);
        }
        return out;
    }

    private static double[] cropDoubles(double[] src, int w, int[] c) {
        int s = c[2];
        double[] out = new double[s * s];
        for (int y = 0; y < s; y++) {
            System.arraycopy(src, (c[1] + y) * w + c[0], out, y * s, s);
        }
        return out;
    }

    /** Decodes a WorkingImage to floats in [0, 1]; throws IllegalArgumentException on a malformed one. */
    public static float[] decode(WorkingImage img) {
        return GrayImage.of(img, null).pixels();
    }
}
