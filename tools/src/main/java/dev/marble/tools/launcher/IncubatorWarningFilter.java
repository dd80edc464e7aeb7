package dev.marble.tools.launcher;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Copies the relaunched JVM's stderr to ours, dropping the one line the JVM prints whenever an
 * incubator module is resolved ({@code WARNING: Using incubator modules: jdk.incubator.vector}):
 * it says nothing a Marble user can act on, and no JVM flag turns it off. Only a first line that is
 * exactly that warning is dropped; everything else passes through byte for byte and unbuffered, so
 * the progress bar's carriage returns still redraw in place.
 */
final class IncubatorWarningFilter {
    static final byte[] WARNING = "WARNING: Using incubator modules: jdk.incubator.vector"
            .getBytes(StandardCharsets.US_ASCII);

    private IncubatorWarningFilter() {
    }

    /** Copies {@code in} to {@code out} until end of stream, minus a leading warning line. */
    static void copy(InputStream in, OutputStream out) throws IOException {
        byte[] head = new byte[WARNING.length + 2];
        int n = 0;
        // Read just enough to tell the warning line (with \n or \r\n) from anything else.
        while (n < head.length) {
            int b = in.read();
            if (b < 0) {
                break;
            }
            head[n++] = (byte) b;
            if (!isPrefixOfWarningLine(head, n)) {
                break;
            }
            if (isWarningLine(head, n)) {
                n = 0;
                break;
            }
        }
        out.write(head, 0, n);
        out.flush();
        byte[] buf = new byte[8192];
        for (int r = in.read(buf); r >= 0; r = in.read(buf)) {
            out.write(buf, 0, r);
            out.flush();
        }
    }

    /** Whether head[0..n) could still grow into the warning followed by a line end. */
    private static boolean isPrefixOfWarningLine(byte[] head, int n) {
        for (int i = 0; i < n; i++) {
            byte expected = i < WARNING.length ? WARNING[i] : (i == WARNING.length && head[i] == '\r') ? (byte) '\r' : (byte) '\n';
            if (head[i] != expected) {
                return false;
            }
        }
        return true;
    }

    private static boolean isWarningLine(byte[] head, int n) {
        return n > WARNING.length && head[n - 1] == '\n'
                && Arrays.equals(head, 0, WARNING.length, WARNING, 0, WARNING.length);
    }
}
