package dev.marble.weights;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.marble.tensors.MarbleException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.function.Executable;

/** Helpers shared by the weights tests: hand-made files and error-message checks. */
final class TestFiles {
    private TestFiles() {
    }

    /** A file of: 8-byte little-endian {@code headerLength}, {@code header} bytes, {@code data}. */
    static Path raw(Path file, long headerLength, byte[] header, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(headerLength).put(header).put(data);
        try {
            return Files.write(file, b.array());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A well-framed file: the true header length, the UTF-8 JSON, then {@code data}. */
    static Path crafted(Path file, String headerJson, byte[] data) {
        byte[] h = headerJson.getBytes(StandardCharsets.UTF_8);
        return raw(file, h.length, h, data);
    }

    /** Runs {@code body}, expecting a MarbleException whose one-line message holds every fragment. */
    static String assertFails(Executable body, String... fragments) {
        MarbleException e = assertThrows(MarbleException.class, body);
        String msg = e.getMessage();
        assertFalse(msg.contains("\n") || msg.contains("\r"), "message is not one line: " + msg);
        for (String f : fragments) {
            assertTrue(msg.contains(f), "message lacks '" + f + "': " + msg);
        }
        return msg;
    }

    /** The golden folder from system property marble.golden; fails (never skips) if it is absent. */
    static Path golden() {
        String g = System.getProperty("marble.golden");
        if (g == null || g.isBlank()) {
            fail("system property marble.golden is not set: run the tests through Maven (it points at ../shared/golden)");
        }
        Path p = Path.of(g);
        if (!Files.isDirectory(p) || !Files.isRegularFile(p.resolve("manifest.json"))) {
            fail("golden folder " + p + " (marble.golden) is missing or has no manifest.json");
        }
        return p;
    }
}
