package dev.marble.tools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledOnOs;
import org.junit.jupiter.api.condition.OS;
import org.junit.jupiter.api.io.TempDir;

/**
 * Ctrl-C during {@code generate}: the CLI runs in a child JVM that gets a real SIGINT once the
 * denoising loop has started; it must stop between steps, exit 130 and leave no file at all (neither
 * the PNG nor a temporary one) in the output directory. When the test itself runs with SIGINT
 * ignored (a background job), the child gets SIGTERM, which runs the same shutdown hook (exit 143).
 */
@EnabledOnOs(OS.LINUX)
class InterruptTest {
    @TempDir
    Path tmp;

    @Test
    void sigintDuringDenoisingLeavesNoFile() throws Exception {
        Path outDir = Files.createDirectory(tmp.resolve("out"));
        Path png = outDir.resolve("x.png");
        String java = ProcessHandle.current().info().command().orElseThrow();
        List<String> cmd = List.of(java, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "generate", "--model", GoldenCases.dir().resolve("models/sd15-tiny").toString(),
                "--prompt", "a red circle", "--steps", "900", "--seed", "1", "--width", "64", "--height", "64",
                "--output", png.toString());
        Process p = new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        StringBuilder err = new StringBuilder();
        boolean intIgnored;
        try {
            // The bar shows "done/total": wait for a few finished steps, so the signal lands mid-loop.
            awaitText(p.getErrorStream(), err, "] 3/", 120);
            // A background job of a non-interactive shell (as CI may run us) inherits SIGINT ignored, and
            // the JVM then never sees Ctrl-C; SIGTERM takes the same shutdown-hook path (exit 143).
            intIgnored = ignores(p.pid(), 2);
            String signal = intIgnored ? "-TERM" : "-INT";
            Process kill = new ProcessBuilder("kill", signal, Long.toString(p.pid())).start();
            assertEquals(0, kill.waitFor());
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "generate did not stop after the signal; stderr: " + tail(err));
            err.append(new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8));
        } finally {
            p.destroyForcibly();
        }
        assertEquals(intIgnored ? 143 : 130, p.exitValue(), "exit code after the signal; stderr: " + tail(err));
        assertTrue(err.toString().contains("cancelled; nothing written"), tail(err));
        try (Stream<Path> left = Files.list(outDir)) {
            assertEquals(List.of(), left.toList(), "files left in the output directory");
        }
    }

    /** Whether process {@code pid} ignores signal {@code sig} (the SigIgn mask of /proc/PID/status). */
    private static boolean ignores(long pid, int sig) throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
            if (line.startsWith("SigIgn:")) {
                return (Long.parseUnsignedLong(line.substring(7).trim(), 16) & (1L << (sig - 1))) != 0;
            }
        }
        return false;
    }

    /** Reads {@code in} into {@code seen} until it contains {@code text}; fails after the timeout or at EOF. */
    private static void awaitText(InputStream in, StringBuilder seen, String text, int seconds) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        byte[] buf = new byte[4096];
        while (seen.indexOf(text) < 0) {
            assertTrue(System.nanoTime() < deadline, "no '" + text + "' on stderr within " + seconds + " s: " + tail(seen));
            int n = in.read(buf);
            assertTrue(n > 0, "stderr closed before '" + text + "': " + tail(seen));
            seen.append(new String(buf, 0, n, StandardCharsets.ISO_8859_1));
        }
    }

    /** The end of a long progress-bar transcript, for failure messages. */
    private static String tail(CharSequence s) {
        return s.length() <= 600 ? s.toString() : "..." + s.subSequence(s.length() - 600, s.length());
    }
}
