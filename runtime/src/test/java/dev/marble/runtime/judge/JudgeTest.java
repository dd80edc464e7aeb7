package dev.marble.runtime.judge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The judge on true renders of the training data generator (test-data/judge) and on wrong captions. */
class JudgeTest {
    private static List<Fixtures.Render> renders;

    @BeforeAll
    static void load() {
        renders = Fixtures.load();
        assertTrue(renders.size() >= 60, "too few fixtures: " + renders.size());
    }

    @Test
    void trueRendersPass() {
        Judge.Tally tally = new Judge.Tally();
        for (Fixtures.Render r : renders) {
            Judge.Verdict v = Judge.judge(r.rgb(), r.width(), r.height(), r.caption());
            tally.add(v);
            if (!Boolean.TRUE.equals(v.colour()) && v.colour() != null || !v.shape()
                    || Boolean.FALSE.equals(v.position())) {
                System.out.println("judge: " + r.file() + " '" + r.caption() + "' -> " + describe(v));
            }
        }
        System.out.println("judge, true renders: " + tally.summary());
        assertAtLeast(tally, "colour", 0.95);
        assertAtLeast(tally, "shape", 0.95);
        assertAtLeast(tally, "position", 0.95);
        assertAtLeast(tally, "size", 0.95);
        assertAtLeast(tally, "background", 0.95);
    }

    @Test
    void shuffledCaptionsFail() {
        Judge.Tally tally = new Judge.Tally();
        int n = renders.size();
        for (int i = 0; i < n; i++) {
            // A fixed derangement: every image with another image's caption.
            Fixtures.Render img = renders.get(i);
            tally.add(Judge.judge(img.rgb(), img.width(), img.height(), renders.get((i + 37) % n).caption()));
        }
        System.out.println("judge, shuffled captions: " + tally.summary());
        assertAtMost(tally, "colour", 0.35);
        assertAtMost(tally, "shape", 0.35);
        assertAtMost(tally, "position", 0.4);
    }

    /** The judge reads any image size: the renders at 2× (nearest neighbour) score as at 1×. */
    @Test
    void largerImagesScoreTheSame() {
        Judge.Tally tally = new Judge.Tally();
        int k = 2;
        for (Fixtures.Render r : renders) {
            int w = r.width() * k;
            int h = r.height() * k;
            float[] big = new float[w * h * 3];
            for (int y = 0; y < h; y++) {
                for (int x = 0; x < w; x++) {
                    System.arraycopy(r.rgb(), ((y / k) * r.width() + x / k) * 3, big, (y * w + x) * 3, 3);
                }
            }
            tally.add(Judge.judge(big, w, h, r.caption()));
        }
        System.out.println("judge, true renders at 2x: " + tally.summary());
        assertAtLeast(tally, "colour", 0.95);
        assertAtLeast(tally, "shape", 0.95);
        assertAtLeast(tally, "position", 0.95);
        assertAtLeast(tally, "size", 0.95);
    }

    /**
     * Each caption with one part changed to something the image does not show: a colour no shape or
     * background has, another shape, a position in another cell, the opposite relation (unless the
     * two shapes are alike, when it holds both ways). The judge must notice the changed part.
     */
    @Test
    void changedCaptionsFail() {
        int[] tried = new int[3];
        int[] caught = new int[3];
        for (Fixtures.Render r : renders) {
            Caption c = Caption.parse(r.caption());
            Scene scene = Scene.read(r.rgb(), r.width(), r.height());
            List<Caption.Thing> things = c.things();
            Caption.Thing first = things.get(0);
            if (first.colour() != null) {
                String other = Palette.NAMES.stream().filter(n -> scene.regions().stream().noneMatch(g -> n.equals(g.colour()))
                        && !scene.background().contains(n)).skip(Math.floorMod(r.file().hashCode(), 3)).findFirst()
                        .orElseThrow();
                tried[0]++;
                caught[0] += Judge.judge(scene, c.with(replaceFirst(things, new Caption.Thing(first.size(), other,
                        first.shape())), c.relation(), c.position(), c.background())).colour() ? 0 : 1;
            }
            String shape = Caption.SHAPES.get((Caption.SHAPES.indexOf(first.shape()) + 1 + Math.floorMod(r.file().hashCode(), 5)) % 6);
            tried[1]++;
            caught[1] += Judge.judge(scene, c.with(replaceFirst(things, new Caption.Thing(first.size(), first.colour(),
                    shape)), c.relation(), c.position(), c.background())).shape() ? 0 : 1;
            // "A red heart to the right of a red heart" holds both ways round.
            boolean symmetric = c.relation() != null && compatible(things.get(0), things.get(1));
            if ((c.position() != null || c.relation() != null) && !symmetric) {
                Caption moved = c.relation() != null
                        ? c.with(things, switch (c.relation()) {
                            case "above" -> "below";
                            case "below" -> "above";
                            case "to the left of" -> "to the right of";
                            case "to the right of" -> "to the left of";
                            default -> "above";
                        }, null, c.background())
                        : c.with(things, null, Caption.POSITIONS.get((Caption.POSITIONS.indexOf(c.position()) + 4) % 9),
                                c.background());
                tried[2]++;
                caught[2] += Judge.judge(scene, moved).position() ? 0 : 1;
            }
        }
        String summary = String.format(Locale.ROOT, "colour %d/%d, shape %d/%d, position %d/%d", caught[0], tried[0],
                caught[1], tried[1], caught[2], tried[2]);
        System.out.println("judge, changed captions caught: " + summary);
        for (int i = 0; i < 3; i++) {
            assertTrue(caught[i] >= 0.95 * tried[i], summary);
        }
    }

    private static boolean compatible(Caption.Thing a, Caption.Thing b) {
        return a.shape().equals(b.shape()) && (a.colour() == null || b.colour() == null || a.colour().equals(b.colour()))
                && (a.size() == null || b.size() == null || a.size().equals(b.size()));
    }

    private static List<Caption.Thing> replaceFirst(List<Caption.Thing> things, Caption.Thing t) {
        List<Caption.Thing> out = new java.util.ArrayList<>(things);
        out.set(0, t);
        return out;
    }

    static String describe(Judge.Verdict v) {
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "colour %s shape %s position %s size %s background %s; bg %s, regions",
                v.colour(), v.shape(), v.position(), v.size(), v.background(), v.scene().background()));
        for (Scene.Region r : v.scene().regions()) {
            Geometry g = r.geometry();
            sb.append(String.format(Locale.ROOT, " [%s %s r%.1f area %d at %.1f,%.1f]", r.colour(), r.shape(),
                    r.radius(), g.area(), g.centreX(), g.centreY()));
        }
        return sb.toString();
    }

    private static void assertAtLeast(Judge.Tally t, String part, double min) {
        assertTrue(t.judged(part) > 0, part + ": nothing judged");
        assertTrue(t.accuracy(part) >= min, part + " accuracy " + t.accuracy(part) + " < " + min + ": " + t.summary());
    }

    private static void assertAtMost(Judge.Tally t, String part, double max) {
        assertTrue(t.judged(part) > 0, part + ": nothing judged");
        assertTrue(t.accuracy(part) <= max, part + " accuracy " + t.accuracy(part) + " > " + max + ": " + t.summary());
    }

    @Test
    void captionsParse() {
        Caption c = Caption.parse("a small red circle above a large blue square on a white and black background");
        assertEquals(List.of(new Caption.Thing("small", "red", "circle"), new Caption.Thing("large", "blue", "square")),
                c.things());
        assertEquals("above", c.relation());
        assertEquals(List.of("white", "black"), c.background());
        Caption d = Caption.parse("an orange heart on the left on an orange background");
        assertEquals("on the left", d.position());
        assertEquals(List.of("orange"), d.background());
        assertEquals(new Caption.Thing(null, null, "star"), Caption.parse("a star to the right of a heart").things().get(0));
        assertEquals("to the right of", Caption.parse("a star to the right of a heart").relation());
        String text = "an orange star below a small heart on an orange and gray background";
        Caption e = Caption.parse(text);
        assertEquals(text, e.with(e.things(), e.relation(), e.position(), e.background()).text());
    }
}
