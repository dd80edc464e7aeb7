package dev.marble.runtime.judge;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Shape recognition by radial profile: the distance from a region's centroid to its edge in 32
 * directions, divided by its mean, compared with the same profile of each ideal shape of the
 * grammar. The shapes are always upright, so no rotation search is needed. A blurred shape has
 * the same profile with smaller swings (rounded star points, softened corners), so each template's
 * swing may shrink to 40 % before comparing; a circle's profile is flat whatever the blur.
 */
final class Shapes {
    static final int RAYS = 32;
    private static final double MIN_SWING = 0.4;
    private static final Map<String, Template> TEMPLATES = new LinkedHashMap<>();

    /** An ideal shape: its normalised profile and its area per squared "radius" (as data.py's r). */
    private record Template(double[] profile, double areaPerR2) {
    }

    static {
        int n = 128;
        double r = 40;
        for (String shape : Caption.SHAPES) {
            float[] cov = render(shape, n, r);
            Geometry g = Geometry.measure(cov, n, n);
            TEMPLATES.put(shape, new Template(g.profile(), g.area() / (r * r)));
        }
    }

    private Shapes() {
    }

    /** The ideal shape whose profile is nearest to {@code profile}. */
    static String classify(double[] profile) {
        return distances(profile).entrySet().stream().min(Map.Entry.comparingByValue()).orElseThrow().getKey();
    }

    /** The distance of {@code profile} to each ideal shape's. */
    static Map<String, Double> distances(double[] profile) {
        Map<String, Double> out = new LinkedHashMap<>();
        TEMPLATES.forEach((shape, t) -> out.put(shape, distance(profile, t.profile())));
        return out;
    }

    /** RMS distance after shrinking the template's swing around 1 by the best factor in [0.4, 1]. */
    static double distance(double[] p, double[] t) {
        double dot = 0;
        double norm = 0;
        for (int i = 0; i < p.length; i++) {
            dot += (p[i] - 1) * (t[i] - 1);
            norm += (t[i] - 1) * (t[i] - 1);
        }
        double beta = norm < 1e-9 ? 1 : Math.clamp(dot / norm, MIN_SWING, 1);
        double sum = 0;
        for (int i = 0; i < p.length; i++) {
            double d = (p[i] - 1) - beta * (t[i] - 1);
            sum += d * d;
        }
        return Math.sqrt(sum / p.length);
    }

    /** The "radius" (data.py's r) of a shape of this kind covering {@code area} pixels. */
    static double radius(String shape, double area) {
        return Math.sqrt(area / TEMPLATES.get(shape).areaPerR2());
    }

    /**
     * Coverage in [0, 1] of one ideal shape of "radius" r centred on an n×n canvas, 4×4 supersampled.
     * The geometry is data.py's shape_mask: the grammar's definition of each shape.
     */
    static float[] render(String shape, int n, double r) {
        float[] cov = new float[n * n];
        double c = n / 2.0;
        for (int y = 0; y < n; y++) {
            for (int x = 0; x < n; x++) {
                int hits = 0;
                for (int sy = 0; sy < 4; sy++) {
                    for (int sx = 0; sx < 4; sx++) {
                        hits += inside(shape, x + (sx + 0.5) / 4 - c, y + (sy + 0.5) / 4 - c, r) ? 1 : 0;
                    }
                }
                cov[y * n + x] = hits / 16f;
            }
        }
        return cov;
    }

    /** Whether the point (x, y) (y down, relative to the centre) lies in the shape. */
    static boolean inside(String shape, double x, double y, double r) {
        switch (shape) {
            case "circle":
                return x * x + y * y <= r * r;
            case "square":
                return Math.abs(x) <= 0.86 * r && Math.abs(y) <= 0.86 * r;
            case "diamond":
                return Math.abs(x) + Math.abs(y) <= 1.15 * r;
            case "triangle": {
                double rr = 1.2 * r;
                double[] vx = new double[3];
                double[] vy = new double[3];
                int[] deg = {-90, 30, 150};
                for (int i = 0; i < 3; i++) {
                    vx[i] = rr * Math.cos(Math.toRadians(deg[i]));
                    vy[i] = rr * Math.sin(Math.toRadians(deg[i])) + 0.2 * rr;
                }
                return inPolygon(x, y, vx, vy);
            }
            case "star": {
                double[] vx = new double[10];
                double[] vy = new double[10];
                for (int k = 0; k < 10; k++) {
                    double a = Math.toRadians(-90 + 36 * k);
                    double rad = k % 2 == 0 ? 1.15 * r : 0.48 * r;
                    vx[k] = rad * Math.cos(a);
                    vy[k] = rad * Math.sin(a) + 0.08 * r;
                }
                return inPolygon(x, y, vx, vy);
            }
            case "heart": {
                double u = x / (0.85 * r);
                double v = -(y / (0.85 * r)) + 0.15;
                double q = u * u + v * v - 1;
                return q * q * q - u * u * v * v * v <= 0;
            }
            default:
                throw new IllegalArgumentException("unknown shape " + shape);
        }
    }

    /** Even-odd rule. */
    private static boolean inPolygon(double x, double y, double[] vx, double[] vy) {
        boolean in = false;
        for (int i = 0, j = vx.length - 1; i < vx.length; j = i++) {
            if ((vy[i] > y) != (vy[j] > y) && x < vx[i] + (y - vy[i]) * (vx[j] - vx[i]) / (vy[j] - vy[i])) {
                in = !in;
            }
        }
        return in;
    }
}
