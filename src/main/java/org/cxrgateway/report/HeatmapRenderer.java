package org.cxrgateway.report;

import java.awt.BasicStroke;
import java.awt.Color;
import java.awt.Font;
import java.awt.FontMetrics;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.awt.image.DataBufferByte;
import java.util.List;

/**
 * Renders the explanation pictures with Java2D.
 *
 * <p>Colour Grad-CAM: the working image in grey, the class activation map through the viridis colormap,
 * alpha-blended in proportion to activation and not drawn at all below {@link #FLOOR} (so cold regions leave
 * the anatomy untouched), a colour bar with its scale, and a text banner. Optionally the original is shown
 * beside the overlay. Guided Grad-CAM: the signed fine-grained map in grey (mid-grey = 0) with the same banner.
 * Text and colour bar are sized from the image, so that they stay legible on a 2,500-pixel film.
 */
public final class HeatmapRenderer {

    /** Largest overlay opacity, reached where the activation is 255. */
    static final double MAX_ALPHA = 0.55;
    /** Activations below this fraction are not drawn at all: they only tint the whole image. */
    static final double FLOOR = 0.15;
    /**
     * Guided Grad-CAM is heavy-tailed: scaling by its maximum leaves almost every pixel mid-grey. This
     * quantile of |v| maps to full black / white instead; the few larger values saturate.
     */
    static final double GUIDED_QUANTILE = 0.995;

    private static final int[] VIRIDIS = buildViridis();

    private HeatmapRenderer() {
    }

    /** Font size in pixels for an image of this size: about 1/40 of the shorter side, never below 14. */
    static int fontSize(int width, int height) {
        return Math.max(14, Math.min(width, height) / 40);
    }

    /**
     * @param gray       row-major 8-bit grey image, {@code width*height}
     * @param cam        row-major 0..255 activation map covering the whole image, any size (bilinearly resized)
     * @param lines      text lines burned into the top-left banner
     * @param sideBySide the original on the left, the overlay on the right (twice as wide)
     * @return a TYPE_3BYTE_BGR image
     */
    public static BufferedImage render(byte[] gray, int width, int height, byte[] cam, int camW, int camH,
                                       List<String> lines, boolean sideBySide) {
        int offset = sideBySide ? width : 0;
        BufferedImage img = new BufferedImage(width + offset, height, BufferedImage.TYPE_3BYTE_BGR);
        byte[] px = ((DataBufferByte) img.getRaster().getDataBuffer()).getData();
        int stride = width + offset;
        for (int y = 0; y < height; y++) {
            for (int x = 0; x < width; x++) {
                int i = y * width + x;
                int g = gray[i] & 0xff;
                int r = g;
                int gg = g;
                int b = g;
                if (cam != null) {
                    double a = sample(cam, camW, camH, (x + 0.5) * camW / width - 0.5, (y + 0.5) * camH / height - 0.5) / 255.0;
                    if (a > FLOOR) {
                        int c = VIRIDIS[(int) Math.round(a * 255)];
                        double alpha = MAX_ALPHA * (a - FLOOR) / (1 - FLOOR);
                        r = blend(g, c >> 16 & 0xff, alpha);
                        gg = blend(g, c >> 8 & 0xff, alpha);
                        b = blend(g, c & 0xff, alpha);
                    }
                }
                int o = 3 * (y * stride + offset + x);
                px[o] = (byte) b;
                px[o + 1] = (byte) gg;
                px[o + 2] = (byte) r;
                if (sideBySide) {
                    int l = 3 * (y * stride + x);
                    px[l] = px[l + 1] = px[l + 2] = (byte) g;
                }
            }
        }
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            int size = fontSize(width, height);
            if (sideBySide) {
                g.setColor(new Color(0, 0, 0));
                g.fillRect(width - Math.max(1, size / 8), 0, 2 * Math.max(1, size / 8), height);
                label(g, List.of("Original"), 0, width, size);
                label(g, lines, offset, width, size);
            } else {
                label(g, lines, 0, width, size);
            }
            if (cam != null) {
                colourBar(g, offset + width, height, size);
            }
        } finally {
            g.dispose();
        }
        return img;
    }

    /**
     * Guided Grad-CAM in grey: mid-grey is 0, brighter is evidence for the class, darker against it.
     *
     * @param guided row-major signed values (any scale), {@code width*height}, already on the image grid
     * @return a TYPE_BYTE_GRAY image
     */
    public static BufferedImage renderGuided(float[] guided, int width, int height, List<String> lines) {
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_BYTE_GRAY);
        byte[] px = ((DataBufferByte) img.getRaster().getDataBuffer()).getData();
        double scale = quantileAbs(guided, GUIDED_QUANTILE);
        for (int i = 0; i < px.length; i++) {
            double v = scale > 0 ? guided[i] / scale : 0;
            px[i] = (byte) Math.round(127.5 + 127.5 * Math.max(-1, Math.min(1, v)));
        }
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            label(g, lines, 0, width, fontSize(width, height));
        } finally {
            g.dispose();
        }
        return img;
    }

    /** The value below which {@code q} of the |v| lie (0 for an all-zero map). */
    static double quantileAbs(float[] v, double q) {
        float[] a = new float[v.length];
        for (int i = 0; i < v.length; i++) {
            a[i] = Math.abs(v[i]);
        }
        java.util.Arrays.sort(a);
        return a.length == 0 ? 0 : a[Math.min(a.length - 1, (int) Math.floor(q * (a.length - 1)))];
    }

    /** 8-bit grey bytes of a TYPE_BYTE_GRAY image, as DICOM MONOCHROME2 wants them. */
    public static byte[] toGray(BufferedImage img) {
        return ((DataBufferByte) img.getRaster().getDataBuffer()).getData().clone();
    }

    /** Packed RGB bytes (R, G, B per pixel) of a TYPE_3BYTE_BGR image, as DICOM wants them. */
    public static byte[] toRgb(BufferedImage img) {
        byte[] bgr = ((DataBufferByte) img.getRaster().getDataBuffer()).getData();
        byte[] rgb = new byte[bgr.length];
        for (int i = 0; i < bgr.length; i += 3) {
            rgb[i] = bgr[i + 2];
            rgb[i + 1] = bgr[i + 1];
            rgb[i + 2] = bgr[i];
        }
        return rgb;
    }

    /** 0xRRGGBB of the viridis colormap at t in [0, 1]. */
    public static int viridis(double t) {
        return VIRIDIS[(int) Math.round(Math.max(0, Math.min(1, t)) * 255)];
    }

    /** A text banner in a dark box at the top left of the panel starting at x0; the font shrinks to fit the panel. */
    private static void label(Graphics2D g, List<String> lines, int x0, int room, int size) {
        if (lines.isEmpty()) {
            return;
        }
        Font font = new Font(Font.SANS_SERIF, Font.BOLD, size);
        g.setFont(font);
        FontMetrics fm = g.getFontMetrics();
        int widest = 0;
        for (String l : lines) {
            widest = Math.max(widest, fm.stringWidth(l));
        }
        // the banner (top) and the colour bar (bottom) never meet, so the banner may take the panel's width
        int limit = room - 2 * size;
        if (widest > limit && widest > 0) {
            size = Math.max(8, size * limit / widest);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, size));
            fm = g.getFontMetrics();
            widest = 0;
            for (String l : lines) {
                widest = Math.max(widest, fm.stringWidth(l));
            }
        }
        int pad = size / 2;
        int boxH = lines.size() * fm.getHeight();
        // a dark box keeps the text legible on any anatomy
        g.setColor(new Color(0, 0, 0, 170));
        g.fillRect(x0 + pad / 2, pad / 2, widest + 2 * pad, boxH + pad);
        g.setStroke(new BasicStroke(1f));
        int y = pad + fm.getAscent();
        for (String l : lines) {
            g.setColor(l.startsWith("AI - not for diagnostic use") ? new Color(255, 200, 0) : Color.WHITE);
            g.drawString(l, x0 + pad / 2 + pad, y);
            y += fm.getHeight();
        }
    }

    /**
     * A vertical viridis bar at the right edge, from the floor to 1 (the drawn range), with its scale, the
     * floor marked, and a note that lower activations are not drawn.
     */
    private static void colourBar(Graphics2D g, int right, int height, int size) {
        Font font = new Font(Font.SANS_SERIF, Font.BOLD, Math.max(10, size * 3 / 4));
        g.setFont(font);
        FontMetrics fm = g.getFontMetrics();
        int barW = Math.max(8, size);
        int barH = Math.max(40, height / 3);
        int margin = size / 2;
        String title = "Grad-CAM";
        String below = "< " + fmt(FLOOR) + " not drawn";
        int labelW = Math.max(fm.stringWidth("1.00"), fm.stringWidth(fmt(FLOOR)));
        int boxW = Math.max(barW + margin + labelW, Math.max(fm.stringWidth(title), fm.stringWidth(below))) + 2 * margin;
        int boxH = barH + 2 * fm.getHeight() + 2 * margin + fm.getAscent() / 2;
        int x0 = right - boxW - margin;
        int y0 = height - boxH - margin;
        g.setColor(new Color(0, 0, 0, 170));
        g.fillRect(x0, y0, boxW, boxH);
        g.setColor(Color.WHITE);
        g.drawString(title, x0 + margin, y0 + margin + fm.getAscent());
        int barX = x0 + margin;
        int barY = y0 + margin + fm.getHeight() + fm.getAscent() / 2;
        for (int i = 0; i < barH; i++) {
            double t = 1 - (double) i / (barH - 1);
            double a = FLOOR + t * (1 - FLOOR);
            g.setColor(new Color(VIRIDIS[(int) Math.round(a * 255)]));
            g.fillRect(barX, barY + i, barW, 1);
        }
        g.setColor(Color.WHITE);
        for (double v : new double[]{1.0, 0.75, 0.5, 0.25, FLOOR}) {
            int y = barY + (int) Math.round((1 - (v - FLOOR) / (1 - FLOOR)) * (barH - 1));
            g.fillRect(barX + barW, y, margin / 2 + 1, Math.max(1, size / 12));
            g.drawString(fmt(v), barX + barW + margin, y + fm.getAscent() / 2);
        }
        g.drawString(below, x0 + margin, barY + barH + fm.getAscent() + fm.getAscent() / 4);
    }

    private static String fmt(double v) {
        return String.format(java.util.Locale.ROOT, "%.2f", v);
    }

    private static int blend(int base, int over, double alpha) {
        return (int) Math.round(base * (1 - alpha) + over * alpha);
    }

    private static double sample(byte[] m, int w, int h, double x, double y) {
        x = Math.max(0, Math.min(w - 1, x));
        y = Math.max(0, Math.min(h - 1, y));
        int x0 = (int) x;
        int y0 = (int) y;
        int x1 = Math.min(w - 1, x0 + 1);
        int y1 = Math.min(h - 1, y0 + 1);
        double fx = x - x0;
        double fy = y - y0;
        double top = (m[y0 * w + x0] & 0xff) * (1 - fx) + (m[y0 * w + x1] & 0xff) * fx;
        double bot = (m[y1 * w + x0] & 0xff) * (1 - fx) + (m[y1 * w + x1] & 0xff) * fx;
        return top * (1 - fy) + bot * fy;
    }

    /**
     * Viridis from a degree-6 polynomial fit per channel (public-domain fit by Matt Zucker), within about 1/255
     * of the matplotlib table: no 256-entry table to ship.
     */
    private static int[] buildViridis() {
        double[][] c = {
                {0.2777273272234177, 0.005407344544966578, 0.3340998053353061},
                {0.1050930431085774, 1.404613529898575, 1.384590162594685},
                {-0.3308618287255563, 0.214847559468213, 0.09509516302823659},
                {-4.634230498983486, -5.799100973351585, -19.33244095627987},
                {6.228269936347081, 14.17993336680509, 56.69055260068105},
                {4.776384997670288, -13.74514537774601, -65.35303263337234},
                {-5.435455855934631, 4.645852612178535, 26.3124352495832}};
        int[] lut = new int[256];
        for (int i = 0; i < 256; i++) {
            double t = i / 255.0;
            int rgb = 0;
            for (int ch = 0; ch < 3; ch++) {
                double v = 0;
                for (int k = 6; k >= 0; k--) {
                    v = v * t + c[k][ch];
                }
                rgb = rgb << 8 | (int) Math.round(Math.max(0, Math.min(1, v)) * 255);
            }
            lut[i] = rgb;
        }
        return lut;
    }
}
