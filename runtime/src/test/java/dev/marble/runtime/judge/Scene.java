package dev.marble.runtime.judge;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * What an image shows, read with simple rules: the background (one colour, or a top and a bottom
 * colour), and the regions that differ from it, each with its nearest named colour, its shape and
 * its geometry.
 *
 * <ol>
 *   <li>Background: the per-channel median of a band along the border (inside the outermost
 *       pixel) in each half; two colours when the
 *       halves differ by more than ΔE 15, split at the row that best separates the side columns.</li>
 *   <li>Foreground: pixels more than a threshold T from their row's background (ΔE; T = 12, raised
 *       to 4× the border's median deviation for noisy images, at most 24), grouped into
 *       8-connected components of at least 16 pixels (scaled with the image area).</li>
 *   <li>Touching shapes of different colours come apart ({@link #split}).</li>
 *   <li>Each region's colour: of its inner pixels (all four neighbours in the region), the half
 *       that stands out most from the background vote for their nearest named colour
 *       ({@link Palette#nearest}); the colour is the mean of the winners.</li>
 *   <li>Coverage: each pixel's fraction of shape colour S over background B, by projecting
 *       (pixel − B) onto (S − B) in RGB, the space the renderer blends in; the region is where it
 *       is at least one half, so anti-aliased or blurred edges count as a human would see them.</li>
 *   <li>What is no shape goes: regions less than 1.5 T from the background around them (texture
 *       of a generated background) and rings (a halo around a shape). A region that does not cover
 *       its own centroid has no shape of the grammar ({@link #UNSHAPED}).</li>
 * </ol>
 *
 * @param width      pixels
 * @param height     pixels
 * @param background one colour name, or two (top, bottom)
 * @param boundary   first row of the bottom colour (height when there is one colour)
 * @param regions    largest first
 */
record Scene(int width, int height, List<String> background, int boundary, List<Region> regions) {
    private static final double TWO_TONE = 15;
    private static final double T_MIN = 12;
    private static final double T_MAX = 24;
    private static final double CONTRAST = 1.5;
    /** The shape of a region that does not cover its own centroid: none of the grammar's. */
    static final String UNSHAPED = "blob";

    /**
     * One shape-like region.
     *
     * @param colour   nearest named colour
     * @param shape    nearest ideal shape, or {@link #UNSHAPED}
     * @param radius   data.py's "radius" r of that shape with this area, in pixels of a 64-pixel image
     * @param geometry area, box, centroid, profile
     */
    record Region(String colour, String shape, double radius, Geometry geometry) {
        /** The grammar's size word: small shapes have r in [7.5, 9.5], large ones in [12, 14]. */
        String size() {
            return radius < 10.75 ? "small" : "large";
        }
    }

    /** Reads an RGB image, [height, width, 3] row-major in [0, 1]. */
    static Scene read(float[] rgb, int w, int h) {
        if (rgb.length != w * h * 3 || w < 8 || h < 8) {
            throw new IllegalArgumentException("image: " + rgb.length + " values for " + w + "x" + h + " RGB");
        }
        int n = w * h;
        float[] lab = new float[n * 3];
        for (int i = 0; i < n; i++) {
            Palette.lab(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], lab, 3 * i);
        }
        // 1. background
        // The border band skips the outermost pixel: a VAE decoder's zero padding tints it.
        int scale = Math.max(1, Math.min(w, h) / 64);
        int inset = scale;
        int band = 3 * scale;
        List<Integer> top = new ArrayList<>();
        List<Integer> bottom = new ArrayList<>();
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int edge = Math.min(Math.min(x, y), Math.min(w - 1 - x, h - 1 - y));
                if (edge >= inset && edge < inset + band) {
                    (y < h / 2 ? top : bottom).add(y * w + x);
                }
            }
        }
        float[] topRgb = medianRgb(rgb, top);
        float[] bottomRgb = medianRgb(rgb, bottom);
        boolean twoTone = Palette.distance(labOf(topRgb), 0, labOf(bottomRgb), 0) > TWO_TONE;
        int boundary = h;
        if (twoTone) {
            boundary = boundary(rgb, w, h, labOf(topRgb), labOf(bottomRgb));
        } else {
            List<Integer> all = new ArrayList<>(top);
            all.addAll(bottom);
            topRgb = medianRgb(rgb, all);
            bottomRgb = topRgb;
        }
        float[] topLab = labOf(topRgb);
        float[] bottomLab = labOf(bottomRgb);
        float[] bgDist = new float[n];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int i = y * w + x;
                double d = Palette.distance(lab, 3 * i, y < boundary ? topLab : bottomLab, 0);
                if (twoTone && Math.abs(y - boundary + 0.5) <= 2.5) {
                    // A blurred seam between the two halves is background too.
                    d = Math.min(d, blendResidual(lab, 3 * i, topLab, bottomLab));
                }
                bgDist[i] = (float) d;
            }
        }
        float[] borderDist = new float[top.size() + bottom.size()];
        int k = 0;
        for (int i : top) {
            borderDist[k++] = bgDist[i];
        }
        for (int i : bottom) {
            borderDist[k++] = bgDist[i];
        }
        double threshold = Math.clamp(4 * median(borderDist), T_MIN, T_MAX);
        // 2. components
        int minArea = Math.max(6, (int) Math.round(16.0 * n / 4096));
        int[] label = new int[n];
        Arrays.fill(label, -1);
        List<int[]> components = new ArrayList<>();
        int[] queue = new int[n];
        for (int s = 0; s < n; s++) {
            if (label[s] != -1 || bgDist[s] <= threshold) {
                continue;
            }
            int id = components.size();
            int head = 0;
            int tail = 0;
            queue[tail++] = s;
            label[s] = id;
            while (head < tail) {
                int p = queue[head++];
                int px = p % w;
                int py = p / w;
                for (int dy = -1; dy <= 1; dy++) {
                    for (int dx = -1; dx <= 1; dx++) {
                        int qx = px + dx;
                        int qy = py + dy;
                        if (qx >= 0 && qy >= 0 && qx < w && qy < h) {
                            int q = qy * w + qx;
                            if (label[q] == -1 && bgDist[q] > threshold) {
                                label[q] = id;
                                queue[tail++] = q;
                            }
                        }
                    }
                }
            }
            components.add(Arrays.copyOf(queue, tail));
        }
        // 3. touching shapes of different colours come apart
        List<int[]> parts = new ArrayList<>();
        for (int[] pixels : components) {
            if (pixels.length >= minArea) {
                parts.addAll(split(rgb, lab, label, pixels, topRgb, bottomRgb, boundary, minArea, w, h));
            }
        }
        Arrays.fill(label, -1);
        for (int id = 0; id < parts.size(); id++) {
            for (int p : parts.get(id)) {
                label[p] = id;
            }
        }
        // 4. colour, coverage, geometry
        List<Region> regions = new ArrayList<>();
        for (int id = 0; id < parts.size(); id++) {
            int[] pixels = parts.get(id);
            float[] shapeRgb = shapeColour(rgb, lab, bgDist, label, id, pixels, w, h);
            float[] cov = coverage(rgb, label, id, pixels, shapeRgb, topRgb, bottomRgb, boundary, w, h);
            Geometry g = Geometry.measure(cov, w, h);
            if (g.area() < minArea || g.ring()) {
                continue; // too small, or a ring (a halo around a shape)
            }
            // Texture in a generated background is no shape: a shape stands out clearly from the
            // background around it.
            float[] shapeLab = labOf(shapeRgb);
            float[] around = g.cy() < boundary ? topLab : bottomLab;
            String colour = Palette.nearest(shapeLab, 0);
            if (Palette.distance(shapeLab, 0, around, 0) < CONTRAST * threshold) {
                continue;
            }
            String shape = g.solid() ? Shapes.classify(g.profile()) : UNSHAPED;
            double radius = Shapes.radius(g.solid() ? shape : "circle", g.area()) * 64.0 / Math.min(w, h);
            regions.add(new Region(colour, shape, radius, g));
        }
        regions.sort(Comparator.comparingInt((Region r) -> r.geometry().area()).reversed());
        List<String> background = twoTone
                ? List.of(Palette.nearest(topLab, 0), Palette.nearest(bottomLab, 0))
                : List.of(Palette.nearest(topLab, 0));
        return new Scene(w, h, background, boundary, regions);
    }

    /**
     * Splits a component into one part per shape colour it holds. Its inner pixels (all four
     * neighbours in the component, so not the anti-aliased rim) vote for their nearest named colour;
     * a colour with at least half the minimum area of votes is a candidate, most votes first. A
     * candidate whose mean is a blend of the background and an accepted colour (a blurred rim) or of
     * two accepted colours (the seam where two shapes touch) is no shape of its own. Each pixel then
     * goes to the accepted colour that, blended with the background, explains it best.
     */
    private static List<int[]> split(float[] rgb, float[] lab, int[] label, int[] pixels, float[] top, float[] bottom,
            int boundary, int minArea, int w, int h) {
        int id = label[pixels[0]];
        int[] votes = new int[Palette.NAMES.size()];
        float[][] sums = new float[votes.length][3];
        for (int p : pixels) {
            int x = p % w;
            int y = p / w;
            if (x > 0 && y > 0 && x < w - 1 && y < h - 1 && label[p - 1] == id && label[p + 1] == id
                    && label[p - w] == id && label[p + w] == id) {
                int c = Palette.NAMES.indexOf(Palette.nearest(lab, 3 * p));
                votes[c]++;
                for (int k = 0; k < 3; k++) {
                    sums[c][k] += rgb[3 * p + k];
                }
            }
        }
        List<Integer> order = new ArrayList<>();
        for (int c = 0; c < votes.length; c++) {
            if (2 * votes[c] >= minArea) {
                order.add(c);
            }
        }
        order.sort(Comparator.comparingInt((Integer c) -> votes[c]).reversed());
        List<float[]> accepted = new ArrayList<>();
        for (int c : order) {
            float[] mean = {sums[c][0] / votes[c], sums[c][1] / votes[c], sums[c][2] / votes[c]};
            if (accepted.isEmpty() || !isBlend(mean, accepted, top, bottom)) {
                accepted.add(mean);
            }
        }
        if (accepted.size() < 2) {
            return List.of(pixels);
        }
        List<List<Integer>> groups = new ArrayList<>();
        for (int g = 0; g < accepted.size(); g++) {
            groups.add(new ArrayList<>());
        }
        for (int p : pixels) {
            float[] bg = p / w < boundary ? top : bottom;
            int best = 0;
            double bestResidual = Double.MAX_VALUE;
            for (int g = 0; g < accepted.size(); g++) {
                double r = blendResidual(rgb, 3 * p, bg, accepted.get(g));
                if (r < bestResidual) {
                    bestResidual = r;
                    best = g;
                }
            }
            groups.get(best).add(p);
        }
        // A part without a body of its own (a dark seam, a rim the blend test missed) rejoins the largest.
        int[] owner = new int[w * h];
        Arrays.fill(owner, -1);
        for (int g = 0; g < groups.size(); g++) {
            for (int p : groups.get(g)) {
                owner[p] = g;
            }
        }
        int largest = 0;
        for (int g = 1; g < groups.size(); g++) {
            largest = groups.get(g).size() > groups.get(largest).size() ? g : largest;
        }
        List<Integer> merged = new ArrayList<>(groups.get(largest));
        List<int[]> out = new ArrayList<>();
        for (int g = 0; g < groups.size(); g++) {
            if (g == largest) {
                continue;
            }
            int inner = 0;
            for (int p : groups.get(g)) {
                int x = p % w;
                int y = p / w;
                if (x > 0 && y > 0 && x < w - 1 && y < h - 1 && owner[p - 1] == g && owner[p + 1] == g
                        && owner[p - w] == g && owner[p + w] == g) {
                    inner++;
                }
            }
            if (2 * inner >= minArea) {
                out.add(groups.get(g).stream().mapToInt(Integer::intValue).toArray());
            } else {
                merged.addAll(groups.get(g));
            }
        }
        out.add(0, merged.stream().mapToInt(Integer::intValue).toArray());
        return out;
    }

    /** Whether an RGB colour is within 20/255 of a blend of the background and a shape colour, or of two shape colours. */
    private static boolean isBlend(float[] c, List<float[]> shapes, float[] top, float[] bottom) {
        double limit = 20 / 255.0;
        for (int i = 0; i < shapes.size(); i++) {
            if (blendResidual(c, 0, top, shapes.get(i)) < limit || blendResidual(c, 0, bottom, shapes.get(i)) < limit) {
                return true;
            }
            for (int j = i + 1; j < shapes.size(); j++) {
                if (blendResidual(c, 0, shapes.get(i), shapes.get(j)) < limit) {
                    return true;
                }
            }
        }
        return false;
    }

    /** Distance from a colour to the nearest blend a + t (b - a), t in [0, 1] (RGB or Lab alike). */
    private static double blendResidual(float[] rgb, int o, float[] a, float[] b) {
        double num = 0;
        double den = 0;
        for (int k = 0; k < 3; k++) {
            num += (rgb[o + k] - a[k]) * (b[k] - a[k]);
            den += (b[k] - a[k]) * (b[k] - a[k]);
        }
        double t = den < 1e-9 ? 0 : Math.clamp(num / den, 0, 1);
        double d2 = 0;
        for (int k = 0; k < 3; k++) {
            double v = rgb[o + k] - (a[k] + t * (b[k] - a[k]));
            d2 += v * v;
        }
        return Math.sqrt(d2);
    }

    /** The shape colour of a region, from its inner pixels, the half that stands out most from the background. */
    private static float[] shapeColour(float[] rgb, float[] lab, float[] bgDist, int[] label, int id, int[] pixels, int w, int h) {
        List<Integer> inner = new ArrayList<>();
        for (int p : pixels) {
            int x = p % w;
            int y = p / w;
            if (x > 0 && y > 0 && x < w - 1 && y < h - 1 && label[p - 1] == id && label[p + 1] == id
                    && label[p - w] == id && label[p + w] == id) {
                inner.add(p);
            }
        }
        if (inner.size() < 4) {
            inner.clear();
            for (int p : pixels) {
                inner.add(p);
            }
        }
        inner.sort(Comparator.comparingDouble((Integer p) -> bgDist[p]).reversed());
        List<Integer> strong = inner.subList(0, (inner.size() + 1) / 2);
        // The colour most of them are nearest to, as their mean: a patchwork of red and green
        // is red or green, not the brown its average would be.
        int[] votes = new int[Palette.NAMES.size()];
        int[] name = new int[strong.size()];
        for (int j = 0; j < strong.size(); j++) {
            name[j] = Palette.NAMES.indexOf(Palette.nearest(lab, 3 * strong.get(j)));
            votes[name[j]]++;
        }
        int winner = 0;
        for (int c = 1; c < votes.length; c++) {
            winner = votes[c] > votes[winner] ? c : winner;
        }
        float[] sum = new float[3];
        for (int j = 0; j < strong.size(); j++) {
            if (name[j] == winner) {
                for (int c = 0; c < 3; c++) {
                    sum[c] += rgb[3 * strong.get(j) + c];
                }
            }
        }
        for (int c = 0; c < 3; c++) {
            sum[c] /= votes[winner];
        }
        return sum;
    }

    /**
     * The coverage map of one component: its own pixels and the background pixels around them,
     * each as the fraction of the shape colour in its blend with the background.
     */
    private static float[] coverage(float[] rgb, int[] label, int id, int[] pixels, float[] s, float[] top,
            float[] bottom, int boundary, int w, int h) {
        float[] cov = new float[w * h];
        for (int p : pixels) {
            int px = p % w;
            int py = p / w;
            for (int dy = -1; dy <= 1; dy++) {
                for (int dx = -1; dx <= 1; dx++) {
                    int qx = px + dx;
                    int qy = py + dy;
                    if (qx >= 0 && qy >= 0 && qx < w && qy < h) {
                        int q = qy * w + qx;
                        if (label[q] == id || label[q] == -1) {
                            cov[q] = alpha(rgb, q, s, qy < boundary ? top : bottom);
                        }
                    }
                }
            }
        }
        return cov;
    }

    private static float alpha(float[] rgb, int p, float[] s, float[] b) {
        double dot = 0;
        double norm = 0;
        for (int c = 0; c < 3; c++) {
            double sb = s[c] - b[c];
            dot += (rgb[3 * p + c] - b[c]) * sb;
            norm += sb * sb;
        }
        return norm < 1e-6 ? 0 : (float) Math.clamp(dot / norm, 0, 1);
    }

    /** The row where the side columns switch from the top colour to the bottom one (least total ΔE). */
    private static int boundary(float[] rgb, int w, int h, float[] topLab, float[] bottomLab) {
        double[] toTop = new double[h];
        double[] toBottom = new double[h];
        int[] xs = {1, 2, w - 3, w - 2};
        for (int y = 0; y < h; y++) {
            List<Integer> side = new ArrayList<>();
            for (int x : xs) {
                side.add(y * w + x);
            }
            float[] l = labOf(medianRgb(rgb, side));
            toTop[y] = Palette.distance(l, 0, topLab, 0);
            toBottom[y] = Palette.distance(l, 0, bottomLab, 0);
        }
        int best = h / 2;
        double bestCost = Double.MAX_VALUE;
        for (int b = 1; b < h; b++) {
            double cost = 0;
            for (int y = 0; y < h; y++) {
                cost += y < b ? toTop[y] : toBottom[y];
            }
            if (cost < bestCost) {
                bestCost = cost;
                best = b;
            }
        }
        return best;
    }

    private static float[] medianRgb(float[] rgb, List<Integer> pixels) {
        float[] out = new float[3];
        float[] v = new float[pixels.size()];
        for (int c = 0; c < 3; c++) {
            for (int j = 0; j < v.length; j++) {
                v[j] = rgb[3 * pixels.get(j) + c];
            }
            out[c] = median(v);
        }
        return out;
    }

    private static float median(float[] v) {
        float[] s = v.clone();
        Arrays.sort(s);
        return s.length % 2 == 1 ? s[s.length / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
    }

    private static float[] labOf(float[] rgb) {
        return Palette.lab(rgb[0], rgb[1], rgb[2]);
    }
}
