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
 * Grad-CAM overlay: the working image in grey, the class activation map through the viridis colormap,
 * alpha-blended in proportion to activation (so cold regions leave the anatomy visible), and a text
 * banner burned in with Java2D.
 */
public final class HeatmapRenderer {

    /** Largest overlay opacity, reached where the activation is 255. */
    static final double MAX_ALPHA = 0.55;
    /** Activations below this fraction are not drawn at all: they only tint the whole image. */
    static final double FLOOR = 0.15;

    private static final int[] VIRIDIS = buildViridis();

    private HeatmapRenderer() {
    }

    /**
     * @param gray  row-major 8-bit grey image, {@code width*height}
     * @param cam   row-major 0..255 activation map, any size (bilinearly resized)
     * @param lines text lines burned into the top-left banner
     * @return a TYPE_3BYTE_BGR image
     */
    public static BufferedImage render(byte[] gray, int width, int height, byte[] cam, int camW, int camH,
                                       List<String> lines) {
        BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_3BYTE_BGR);
        byte[] px = ((DataBufferByte) img.getRaster().getDataBuffer()).getData();
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
                px[3 * i] = (byte) b;
                px[3 * i + 1] = (byte) gg;
                px[3 * i + 2] = (byte) r;
            }
        }
        burnIn(img, lines);
        return img;
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

    private static void burnIn(BufferedImage img, List<String> lines) {
        if (lines.isEmpty()) {
            return;
        }
        Graphics2D g = img.createGraphics();
        try {
            g.setRenderingHint(RenderingHints.KEY_TEXT_ANTIALIASING, RenderingHints.VALUE_TEXT_ANTIALIAS_ON);
            int size = Math.max(12, img.getHeight() / 36);
            g.setFont(new Font(Font.SANS_SERIF, Font.BOLD, size));
            FontMetrics fm = g.getFontMetrics();
            int pad = size / 2;
            int boxW = 0;
            for (String l : lines) {
                boxW = Math.max(boxW, fm.stringWidth(l));
            }
            int boxH = lines.size() * fm.getHeight();
            // a dark box keeps the text legible on any anatomy
            g.setColor(new Color(0, 0, 0, 170));
            g.fillRect(pad / 2, pad / 2, boxW + 2 * pad, boxH + pad);
            g.setStroke(new BasicStroke(1f));
            int y = pad / 2 + pad / 2 + fm.getAscent();
            for (String l : lines) {
                g.setColor(l.startsWith("AI - not for diagnostic use") ? new Color(255, 200, 0) : Color.WHITE);
                g.drawString(l, pad / 2 + pad, y);
                y += fm.getHeight();
            }
        } finally {
            g.dispose();
        }
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
