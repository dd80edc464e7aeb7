package dev.marble.runtime.judge;

import java.util.List;

/**
 * The grammar's 11 named colours (their sRGB values in tools/train/data.py) and a nearest-colour
 * rule in CIELAB, where Euclidean distance roughly follows perceived difference (CIE76 ΔE). The
 * closest pair, blue and purple, is ΔE 29.7 apart; the renderer's ±12 jitter per channel moves a
 * colour by at most ~10.
 */
final class Palette {
    static final List<String> NAMES = List.of("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown",
            "black", "white", "gray");
    private static final int[][] RGB = {
        {220, 30, 30}, {245, 135, 20}, {245, 215, 30}, {40, 160, 60}, {35, 75, 215}, {135, 50, 175},
        {245, 135, 190}, {125, 75, 35}, {20, 20, 20}, {245, 245, 245}, {128, 128, 128}};
    private static final float[][] LAB = new float[RGB.length][];

    static {
        for (int i = 0; i < RGB.length; i++) {
            LAB[i] = lab(RGB[i][0] / 255f, RGB[i][1] / 255f, RGB[i][2] / 255f);
        }
    }

    private Palette() {
    }

    static boolean isColour(String word) {
        return NAMES.contains(word);
    }

    /** The named colour nearest to a CIELAB colour. */
    static String nearest(float[] lab, int offset) {
        int best = 0;
        double bestD = Double.MAX_VALUE;
        for (int i = 0; i < LAB.length; i++) {
            double d = distance2(lab, offset, LAB[i], 0);
            if (d < bestD) {
                bestD = d;
                best = i;
            }
        }
        return NAMES.get(best);
    }

    /** Squared CIE76 ΔE between two Lab triples stored in arrays at the given offsets. */
    static double distance2(float[] a, int ia, float[] b, int ib) {
        double dl = a[ia] - b[ib];
        double da = a[ia + 1] - b[ib + 1];
        double db = a[ia + 2] - b[ib + 2];
        return dl * dl + da * da + db * db;
    }

    static double distance(float[] a, int ia, float[] b, int ib) {
        return Math.sqrt(distance2(a, ia, b, ib));
    }

    /** sRGB in [0, 1] → CIELAB (D65 white), as {L, a, b}. */
    static float[] lab(float r, float g, float b) {
        float[] out = new float[3];
        lab(r, g, b, out, 0);
        return out;
    }

    static void lab(float r, float g, float b, float[] out, int o) {
        double lr = linear(r);
        double lg = linear(g);
        double lb = linear(b);
        double x = (0.4124564 * lr + 0.3575761 * lg + 0.1804375 * lb) / 0.95047;
        double y = 0.2126729 * lr + 0.7151522 * lg + 0.0721750 * lb;
        double z = (0.0193339 * lr + 0.1191920 * lg + 0.9503041 * lb) / 1.08883;
        double fx = f(x);
        double fy = f(y);
        double fz = f(z);
        out[o] = (float) (116 * fy - 16);
        out[o + 1] = (float) (500 * (fx - fy));
        out[o + 2] = (float) (200 * (fy - fz));
    }

    private static double linear(float c) {
        double v = Math.min(1, Math.max(0, c));
        return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    }

    private static double f(double t) {
        return t > 216.0 / 24389 ? Math.cbrt(t) : (24389.0 / 27 * t + 16) / 116;
    }
}
