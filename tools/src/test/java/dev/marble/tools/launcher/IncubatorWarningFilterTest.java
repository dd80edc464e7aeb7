package dev.marble.tools.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class IncubatorWarningFilterTest {
    private static final String W = "WARNING: Using incubator modules: jdk.incubator.vector";

    private static String filter(String in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        IncubatorWarningFilter.copy(new ByteArrayInputStream(in.getBytes(StandardCharsets.UTF_8)), out);
        return out.toString(StandardCharsets.UTF_8);
    }

    @Test
    void dropsTheLeadingWarningLineOnly() throws IOException {
        assertEquals("generating [#..] 1/20\rgenerating [##.] 2/20\n", filter(W + "\ngenerating [#..] 1/20\rgenerating [##.] 2/20\n"));
        assertEquals("x\n", filter(W + "\r\nx\n"));
        assertEquals("", filter(W + "\n"));
        // a second copy later on is somebody else's output: kept
        assertEquals("a\n" + W + "\n", filter("a\n" + W + "\n"));
    }

    @Test
    void keepsLinesThatOnlyStartLikeTheWarning() throws IOException {
        assertEquals("WARNING: Using incubator modules: jdk.incubator.vector, jdk.foo\n",
                filter("WARNING: Using incubator modules: jdk.incubator.vector, jdk.foo\n"));
        assertEquals("WARNING: something else\n", filter("WARNING: something else\n"));
        assertEquals("WARN", filter("WARN"));
        assertEquals(W, filter(W));
        assertEquals("marble: error: no such file\n", filter("marble: error: no such file\n"));
        assertEquals("", filter(""));
    }
}
