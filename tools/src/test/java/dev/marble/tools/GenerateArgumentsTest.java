package dev.marble.tools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Out-of-range generation settings stop with one line and write nothing. */
class GenerateArgumentsTest {
    @TempDir
    Path tmp;

    @Test
    void guidanceRescaleOutOfRange() {
        Path model = Path.of(System.getProperty("marble.golden"), "models/sd15-tiny");
        Path png = tmp.resolve("x.png");
        CliRun r = CliRun.of("generate", "--model", model.toString(), "--prompt", "x", "--steps", "1", "--quiet",
                "--guidance-rescale", "2", "--output", png.toString());
        assertEquals(1, r.code(), r.err());
        assertEquals("marble: error: guidance rescale: must be between 0 and 1, got 2.0\n", r.err().replace("\r\n", "\n"));
        assertFalse(Files.exists(png));
    }
}
