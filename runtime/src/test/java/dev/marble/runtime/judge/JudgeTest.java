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
    }
}
