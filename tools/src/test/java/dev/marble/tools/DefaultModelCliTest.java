package dev.marble.tools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.runtime.Marble;
import dev.marble.runtime.image.Images;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Commands without --model: they use the model bundled in the jar, or, in a build without one, stop
 * with one line saying --model is required. Which of the two this build is, the class path decides.
 */
class DefaultModelCliTest {
    @TempDir
    Path tmp;

    private static CliRun run(String... args) {
        return CliRun.of(args);
    }

    @Test
    void generateWithoutModel() {
        Path png = tmp.resolve("demo.png");
        CliRun r = run("generate", "--prompt", "a red circle above a blue square", "--seed", "1", "--quiet",
                "--output", png.toString());
        if (Marble.hasDefaultModel()) {
            assertEquals(0, r.code(), r.err());
            int[] hw = new int[2];
            Images.readRgb(png, hw);
            assertEquals(64, hw[0], "the bundled model draws 64x64 by default");
            assertEquals(64, hw[1]);
        } else {
            assertOneLineModelRequired(r);
            assertFalse(Files.exists(png));
        }
    }

    @Test
    void tokenizeAndRunWithoutModel() {
        CliRun t = run("tokenize", "--prompt", "a red circle");
        Path out = tmp.resolve("te.safetensors");
        CliRun s = run("run", "text-encoder", "--prompt", "a red circle", "--out", out.toString());
        if (Marble.hasDefaultModel()) {
            assertEquals(0, t.code(), t.err());
            assertTrue(t.out().startsWith("["), t.out());
            assertEquals(0, s.code(), s.err());
            assertTrue(Files.exists(out));
        } else {
            assertOneLineModelRequired(t);
            assertOneLineModelRequired(s);
        }
    }

    private static void assertOneLineModelRequired(CliRun r) {
        assertEquals(1, r.code(), r.err());
        assertEquals("marble: error: --model is required: this build has no bundled default model\n",
                r.err().replace("\r\n", "\n"));
    }
}
