package dev.marble.runtime.judge;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The fixed prompt set parses, covers the grammar, and the PSNR helper measures what it says. */
class JudgePromptsTest {
    @Test
    void promptsCoverEveryColourShapePositionAndRelation() {
        List<JudgeRunner.Prompt> prompts = JudgeRunner.prompts();
        assertTrue(prompts.size() >= 40 && prompts.size() <= 60, "prompts: " + prompts.size());
        Set<String> colours = new HashSet<>();
        Set<String> shapes = new HashSet<>();
        Set<String> positions = new HashSet<>();
        Set<String> relations = new HashSet<>();
        Set<Long> seeds = new HashSet<>();
        for (JudgeRunner.Prompt p : prompts) {
            Caption c = Caption.parse(p.text());
            for (Caption.Thing t : c.things()) {
                if (t.colour() != null) {
                    colours.add(t.colour());
                    assertFalse(c.background().contains(t.colour()), "shape colour = background: " + p.text());
                }
                shapes.add(t.shape());
            }
            if (c.position() != null) {
                positions.add(c.position());
            }
            if (c.relation() != null) {
                relations.add(c.relation());
            }
            assertTrue(seeds.add(p.seed()), "seed used twice: " + p.seed());
        }
        assertEquals(Set.copyOf(Palette.NAMES), colours);
        assertEquals(Set.copyOf(Caption.SHAPES), shapes);
        assertEquals(Set.copyOf(Caption.POSITIONS), positions);
        assertEquals(Set.copyOf(Caption.RELATIONS), relations);
    }

    @Test
    void psnrOfAKnownError() {
        float[] a = new float[300];
        float[] b = a.clone();
        for (int i = 0; i < b.length; i++) {
            b[i] = i % 2 == 0 ? 0.1f : -0.1f; // MSE 0.01 -> 20 dB
        }
        assertEquals(20.0, JudgeRunner.psnr(a, b), 1e-4);
        assertEquals(Double.POSITIVE_INFINITY, JudgeRunner.psnr(a, a.clone()));
    }
}
