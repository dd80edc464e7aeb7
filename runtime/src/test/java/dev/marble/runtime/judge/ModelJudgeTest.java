package dev.marble.runtime.judge;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.runtime.Marble;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import org.junit.jupiter.api.Test;

/**
 * Prompt adherence of a trained shapes model: the fixed prompt set (prompts.txt) through the Java
 * pipeline, graded by the judge, with the table printed. The model is {@code -Dmarble.judge.model=DIR}
 * (a diffusers folder), else the model bundled in the jar. The test fails below issue 6's aims:
 * colour 90 %, shape 80 %, position 80 %.
 *
 * <p>{@code -Dmarble.judge.compare=DIR[,DIR...]} also runs other models (quantized copies) on the same
 * prompts and seeds and prints, per model, the PSNR of its images against the first model's and its
 * own accuracy. {@code -Dmarble.judge.out=DIR} writes every image and a contact sheet per model.
 * {@code -Dmarble.judge.cfg=G} and {@code -Dmarble.judge.rescale=PHI} change the guidance scale (7.5) and
 * guidance rescale (0) for experiments; the aims are judged at the defaults.
 *
 * <p>Excluded from the default test run until the bundled model is in the build (runtime/pom.xml);
 * run it by name: {@code mvn -o -pl runtime -am test -Dtest=ModelJudgeTest -Dsurefire.failIfNoSpecifiedTests=false}.
 */
class ModelJudgeTest {
    private static final double COLOUR_AIM = 0.90;
    private static final double SHAPE_AIM = 0.80;
    private static final double POSITION_AIM = 0.80;

    @Test
    void modelFollowsThePrompts() {
        String dir = System.getProperty("marble.judge.model", "");
        String name = dir.isBlank() ? "bundled model" : dir;
        List<JudgeRunner.Prompt> prompts = JudgeRunner.prompts();
        List<JudgeRunner.Outcome> reference;
        long t0 = System.nanoTime();
        try (Marble m = dir.isBlank() ? Marble.loadDefault() : Marble.load(Path.of(dir))) {
            reference = JudgeRunner.run(m, prompts);
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        System.out.println(JudgeRunner.table(String.format(Locale.ROOT, "judge: %s, %d prompts, %.1f s", name,
                prompts.size(), seconds), reference));
        write(reference, "reference");
        Judge.Tally tally = JudgeRunner.tally(reference);

        String compare = System.getProperty("marble.judge.compare", "");
        if (!compare.isBlank()) {
            List<String> rows = new ArrayList<>();
            rows.add(row(name, "-", tally));
            int i = 0;
            for (String other : compare.split(",")) {
                List<JudgeRunner.Outcome> outcomes;
                try (Marble m = Marble.load(Path.of(other.trim()))) {
                    outcomes = JudgeRunner.run(m, prompts);
                }
                System.out.println(JudgeRunner.table("judge: " + other.trim(), outcomes));
                write(outcomes, "compare-" + i++);
                rows.add(row(other.trim(), JudgeRunner.psnrSummary(reference, outcomes), JudgeRunner.tally(outcomes)));
            }
            System.out.println("| model | PSNR vs " + name + " | colour | shape | position |\n|---|---|---|---|---|");
            rows.forEach(System.out::println);
        }
        String summary = tally.summary();
        assertTrue(tally.accuracy("colour") >= COLOUR_AIM, "colour below " + COLOUR_AIM + ": " + summary);
        assertTrue(tally.accuracy("shape") >= SHAPE_AIM, "shape below " + SHAPE_AIM + ": " + summary);
        assertTrue(tally.accuracy("position") >= POSITION_AIM, "position below " + POSITION_AIM + ": " + summary);
    }

    private static String row(String model, String psnr, Judge.Tally t) {
        return String.format(Locale.ROOT, "| %s | %s | %.1f %% | %.1f %% | %.1f %% |", model, psnr,
                100 * t.accuracy("colour"), 100 * t.accuracy("shape"), 100 * t.accuracy("position"));
    }

    private static void write(List<JudgeRunner.Outcome> outcomes, String sub) {
        String out = System.getProperty("marble.judge.out", "");
        if (!out.isBlank()) {
            JudgeRunner.writeImages(outcomes, Path.of(out, sub));
        }
    }
}
