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
 * @param solid   whether the region covers its centroid, as every shape of the grammar does; else
 *                the profile means nothing (two blobs joined by a thread, a "C")
 * @param ring    whether the centroid lies in a hole the region closes all round (a ring, a halo)
 * @param profile edge distance from the centroid in {@link Shapes#RAYS} directions (clockwise from
 *                +x, y down), divided by its mean
 */
record Geometry(int area, int x0, int y0, int x1, int y1, double cx, double cy, boolean solid, boolean ring,
        double[] profile) {
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
            return new Geometry(0, 0, 0, 0, 0, 0, 0, false, false, new double[Shapes.RAYS]);
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
        boolean solid = sample(cov, w, h, cx, cy) >= 0.5;
        boolean ring = !solid && enclosed(cov, w, h, (int) cx, (int) cy);
        return new Geometry(area, x0, y0, x1, y1, cx, cy, solid, ring, profile);
    }

    /**
     * Whether pixel (x, y) is cut off from the image border by covered pixels: flood fill over
     * uncovered pixels (4-connected) from (x, y); reaching the border means open (two blobs side by
     * side, a "C"), not reaching it means a hole.
     */
    private static boolean enclosed(float[] cov, int w, int h, int x, int y) {
        boolean[] seen = new boolean[w * h];
        int[] queue = new int[w * h];
        int head = 0;
        int tail = 0;
        queue[tail++] = y * w + x;
        seen[y * w + x] = true;
        while (head < tail) {
            int p = queue[head++];
            int px = p % w;
            int py = p / w;
            if (px == 0 || py == 0 || px == w - 1 || py == h - 1) {
                return false;
            }
            for (int q : new int[] {p - 1, p + 1, p - w, p + w}) {
                if (!seen[q] && cov[q] < 0.5f) {
                    seen[q] = true;
                    queue[tail++] = q;
                }
            }
        }
        return true;
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
