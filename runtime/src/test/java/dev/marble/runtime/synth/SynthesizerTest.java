package dev.marble.runtime.synth;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.runtime.GenerationListener;
import dev.marble.runtime.GenerationRequest;
import dev.marble.runtime.Marble;
import dev.marble.tensors.DType;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A model synthesized like the golden one loads and draws finite pixels. */
class SynthesizerTest {
    @Test
    void synthesizedFolderLoadsAndGenerates(@TempDir Path dir) {
        Path golden = Path.of(System.getProperty("marble.golden"), "models/sd15-tiny");
        Path out = dir.resolve("model");
        StringBuilder seen = new StringBuilder();
        Synthesizer.writeFolder(golden.toString(), DType.F16, out, part -> seen.append(part).append(' '));
        assertEquals("text_encoder unet vae ", seen.toString());
        try (Marble m = Marble.load(out)) {
            assertTrue(m.unusedKeys().isEmpty(), m.unusedKeys().toString());
            float[] px = m.generate(GenerationRequest.builder().prompt("a cat").steps(2).seed(1).size(64, 64).build(),
                    GenerationListener.NONE).image().pixels();
            for (float v : px) {
                assertTrue(v >= 0 && v <= 1, "pixel " + v);
            }
        }
    }

    @Test
    void tokenizerSymbolsAreTheByteAlphabet() {
        var symbols = Tokenizers.byteSymbols();
        assertEquals(256, symbols.size());
        assertEquals(256, new java.util.HashSet<>(symbols).size());
        assertEquals("!", symbols.get('!'));
        assertEquals("Ā", symbols.get(0)); // byte 0 maps to U+0100, the first non-printable replacement
    }
}
