package dev.marble.runtime.judge;

import java.util.ArrayList;
import java.util.List;

/**
 * A deterministic judge of prompt adherence for the shapes grammar: does an image show what its
 * caption says? It reads the image as a {@link Scene}, then gives each shape of the caption its own
 * region, choosing among the ways to do so the one that matches the most named colours, then shapes,
 * then the position or relation, then sizes, and grades that match.
 *
 * <p>Positions are cells of a 3×3 grid, taken at the centre of the region's bounding box (where the
 * renderer places a shape: every placement of data.py falls inside its cell with 1 pixel to spare).
 * A relation holds when the second region lies on the named side of the first, along the dominant
 * axis: "A above B" means B's centre is lower and more below than beside; "next to" means more
 * beside than above or below.
 */
final class Judge {
    private static final int MAX_REGIONS = 6;

    private Judge() {
    }

    /**
     * Per caption: each verdict is null when the caption does not name that part.
     *
     * @param colour     every named colour is the colour of its shape's region
     * @param shape      every region has its shape
     * @param position   the single shape's named position, or the relation, holds
     * @param size       every named size matches the region's
     * @param background the named background colour(s) are the image's
     * @param count      the image has exactly as many regions as the caption has shapes
     */
    record Verdict(Caption caption, Scene scene, Boolean colour, boolean shape, Boolean position, Boolean size,
            Boolean background, boolean count) {
    }

    static Verdict judge(float[] rgb, int width, int height, String caption) {
        return judge(Scene.read(rgb, width, height), Caption.parse(caption));
    }

    static Verdict judge(Scene scene, Caption caption) {
        List<Scene.Region> regions = scene.regions().subList(0, Math.min(MAX_REGIONS, scene.regions().size()));
        List<Caption.Thing> things = caption.things();
        Scene.Region[] best = new Scene.Region[things.size()];
        int[] bestScore = {-1};
        assign(scene, caption, regions, new Scene.Region[things.size()], 0, best, bestScore);
        boolean colourNamed = false;
        boolean colour = true;
        boolean shape = true;
        boolean sizeNamed = false;
        boolean size = true;
        for (int i = 0; i < things.size(); i++) {
            Caption.Thing t = things.get(i);
            Scene.Region r = best[i];
            if (t.colour() != null) {
                colourNamed = true;
                colour &= r != null && r.colour().equals(t.colour());
            }
            shape &= r != null && r.shape().equals(t.shape());
            if (t.size() != null) {
                sizeNamed = true;
                size &= r != null && r.size().equals(t.size());
            }
        }
        Boolean position = caption.position() == null && caption.relation() == null ? null
                : placed(scene, caption, best);
        Boolean background = caption.background().isEmpty() ? null : caption.background().equals(scene.background());
        return new Verdict(caption, scene, colourNamed ? colour : null, shape, position, sizeNamed ? size : null,
                background, scene.regions().size() == things.size());
    }

    /** Tries every injective assignment of regions to the caption's shapes; keeps the best-scoring one. */
    private static void assign(Scene scene, Caption caption, List<Scene.Region> regions, Scene.Region[] chosen,
            int i, Scene.Region[] best, int[] bestScore) {
        if (i == chosen.length) {
            int score = score(scene, caption, chosen);
            if (score > bestScore[0]) {
                bestScore[0] = score;
                System.arraycopy(chosen, 0, best, 0, chosen.length);
            }
            return;
        }
        boolean any = false;
        for (Scene.Region r : regions) {
            if (!contains(chosen, i, r)) {
                any = true;
                chosen[i] = r;
                assign(scene, caption, regions, chosen, i + 1, best, bestScore);
            }
        }
        if (!any) {
            chosen[i] = null;
            assign(scene, caption, regions, chosen, i + 1, best, bestScore);
        }
    }

    private static boolean contains(Scene.Region[] chosen, int upTo, Scene.Region r) {
        for (int j = 0; j < upTo; j++) {
            if (chosen[j] == r) {
                return true;
            }
        }
        return false;
    }

    /** Colours outrank shapes, which outrank the position, which outranks sizes. */
    private static int score(Scene scene, Caption caption, Scene.Region[] chosen) {
        int colours = 0;
        int shapes = 0;
        int sizes = 0;
        for (int i = 0; i < chosen.length; i++) {
            Caption.Thing t = caption.things().get(i);
            Scene.Region r = chosen[i];
            if (r == null) {
                continue;
            }
            colours += t.colour() != null && r.colour().equals(t.colour()) ? 1 : 0;
            shapes += r.shape().equals(t.shape()) ? 1 : 0;
            sizes += t.size() != null && r.size().equals(t.size()) ? 1 : 0;
        }
        boolean placed = (caption.position() != null || caption.relation() != null) && placed(scene, caption, chosen);
        return colours * 64 + shapes * 16 + (placed ? 8 : 0) + sizes;
    }

    private static boolean placed(Scene scene, Caption caption, Scene.Region[] chosen) {
        for (Scene.Region r : chosen) {
            if (r == null) {
                return false;
            }
        }
        if (caption.relation() != null) {
            return related(chosen[0].geometry(), chosen[1].geometry(), caption.relation());
        }
        return caption.position().equals(cell(scene, chosen[0].geometry()));
    }

    /** The grammar's position name of the 3×3 grid cell holding the box centre. */
    static String cell(Scene scene, Geometry g) {
        int col = Math.min(2, (int) (3 * g.centreX() / scene.width()));
        int row = Math.min(2, (int) (3 * g.centreY() / scene.height()));
        String[][] names = {
            {"in the top left corner", "at the top", "in the top right corner"},
            {"on the left", "in the center", "on the right"},
            {"in the bottom left corner", "at the bottom", "in the bottom right corner"}};
        return names[row][col];
    }

    static boolean related(Geometry a, Geometry b, String relation) {
        double dx = b.centreX() - a.centreX();
        double dy = b.centreY() - a.centreY();
        boolean vertical = Math.abs(dy) > Math.abs(dx);
        return switch (relation) {
            case "above" -> vertical && dy > 0;
            case "below" -> vertical && dy < 0;
            case "to the left of" -> !vertical && dx > 0;
            case "to the right of" -> !vertical && dx < 0;
            case "next to" -> !vertical;
            default -> throw new IllegalArgumentException("unknown relation " + relation);
        };
    }

    /** Accuracy over many verdicts, per part: correct / judged (parts the caption names). */
    static final class Tally {
        private final int[] correct = new int[6];
        private final int[] judged = new int[6];
        private final List<Verdict> verdicts = new ArrayList<>();
        static final List<String> PARTS = List.of("colour", "shape", "position", "size", "background", "count");

        void add(Verdict v) {
            verdicts.add(v);
            Boolean[] parts = {v.colour(), v.shape(), v.position(), v.size(), v.background(), v.count()};
            for (int i = 0; i < parts.length; i++) {
                if (parts[i] != null) {
                    judged[i]++;
                    correct[i] += parts[i] ? 1 : 0;
                }
            }
        }

        /** Fraction correct of the named part ("colour", ...), or NaN if no caption named it. */
        double accuracy(String part) {
            int i = PARTS.indexOf(part);
            return judged[i] == 0 ? Double.NaN : (double) correct[i] / judged[i];
        }

        int judged(String part) {
            return judged[PARTS.indexOf(part)];
        }

        List<Verdict> verdicts() {
            return List.copyOf(verdicts);
        }

        /** One line: "colour 95.0 % (57/60), shape ...". */
        String summary() {
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < PARTS.size(); i++) {
                if (i > 0) {
                    sb.append(", ");
                }
                sb.append(String.format(java.util.Locale.ROOT, "%s %.1f %% (%d/%d)", PARTS.get(i),
                        judged[i] == 0 ? Double.NaN : 100.0 * correct[i] / judged[i], correct[i], judged[i]));
            }
            return sb.toString();
        }
    }
}
