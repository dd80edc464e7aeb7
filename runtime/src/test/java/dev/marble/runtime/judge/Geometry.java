package dev.marble.runtime.judge;

/**
 * The measurements of one region's coverage map (values in [0, 1]; the region is where coverage
 * is at least one half), in pixel-edge coordinates: pixel (x, y) spans [x, x + 1) × [y, y + 1).
 *
 * @param area    pixels with coverage ≥ 0.5
 * @param x0      bounding box, left edge
 * @param y0      top edge
 * @param x1      right edge (exclusive)
 * @param y1      bottom edge (exclusive)
 * @param cx      centroid
 * @param cy      centroid
 * @param profile edge distance from the centroid in {@link Shapes#RAYS} directions (clockwise from
 *                +x, y down), divided by its mean
 */
record Geometry(int area, int x0, int y0, int x1, int y1, double cx, double cy, double[] profile) {
    private static final double STEP = 0.25;

    /** The centre of the bounding box: where the renderer put the shape (a triangle's centroid sits 0.24 r lower). */
    double centreX() {
        return (x0 + x1) / 2.0;
    }

    double centreY() {
        return (y0 + y1) / 2.0;
    }

    static Geometry measure(float[] cov, int w, int h) {
        int area = 0;
        int x0 = w;
        int y0 = h;
        int x1 = 0;
        int y1 = 0;
        double sx = 0;
        double sy = 0;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                if (cov[y * w + x] >= 0.5f) {
                    area++;
                    sx += x + 0.5;
                    sy += y + 0.5;
                    x0 = Math.min(x0, x);
                    y0 = Math.min(y0, y);
                    x1 = Math.max(x1, x + 1);
                    y1 = Math.max(y1, y + 1);
                }
            }
        }
        if (area == 0) {
            return new Geometry(0, 0, 0, 0, 0, 0, 0, new double[Shapes.RAYS]);
        }
        double cx = sx / area;
        double cy = sy / area;
        double[] profile = new double[Shapes.RAYS];
        double mean = 0;
        double limit = Math.hypot(w, h);
        for (int k = 0; k < Shapes.RAYS; k++) {
            double a = 2 * Math.PI * k / Shapes.RAYS;
            double dx = Math.cos(a);
            double dy = Math.sin(a);
            // March out to the first point below one half, then place the edge between the last two samples.
            double prev = sample(cov, w, h, cx, cy);
            double t = 0;
            double edge = 0;
            while (t < limit) {
                double next = sample(cov, w, h, cx + dx * (t + STEP), cy + dy * (t + STEP));
                if (next < 0.5) {
                    edge = prev >= 0.5 ? t + STEP * (prev - 0.5) / (prev - next) : t;
                    break;
                }
                prev = next;
                t += STEP;
            }
            profile[k] = edge;
            mean += edge;
        }
        mean /= Shapes.RAYS;
        for (int k = 0; k < Shapes.RAYS; k++) {
            profile[k] = mean > 0 ? profile[k] / mean : 1;
        }
        return new Geometry(area, x0, y0, x1, y1, cx, cy, profile);
    }

    /** Bilinear coverage at a point in pixel-edge coordinates (pixel centres at +0.5); 0 outside. */
    private static double sample(float[] cov, int w, int h, double px, double py) {
        double u = px - 0.5;
        double v = py - 0.5;
        int xa = (int) Math.floor(u);
        int ya = (int) Math.floor(v);
        double fx = u - xa;
        double fy = v - ya;
        return (at(cov, w, h, xa, ya) * (1 - fx) + at(cov, w, h, xa + 1, ya) * fx) * (1 - fy)
                + (at(cov, w, h, xa, ya + 1) * (1 - fx) + at(cov, w, h, xa + 1, ya + 1) * fx) * fy;
    }

    private static double at(float[] cov, int w, int h, int x, int y) {
        return x < 0 || y < 0 || x >= w || y >= h ? 0 : cov[y * w + x];
    }
}
