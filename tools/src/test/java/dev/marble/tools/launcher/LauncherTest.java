package dev.marble.tools.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

class LauncherTest {
    /** The child maps megabyte blocks on their own (1 MB threshold), unless the user chose a threshold. */
    @Test
    void childGetsAFixedMmapThreshold() {
        String own = System.getenv(Launcher.MMAP_THRESHOLD_ENV);
        ProcessBuilder pb = Launcher.child(List.of("java"));
        assertEquals(own != null ? own : "1048576", pb.environment().get(Launcher.MMAP_THRESHOLD_ENV));
        assertEquals(ProcessBuilder.Redirect.INHERIT, pb.redirectInput());
        assertEquals(ProcessBuilder.Redirect.INHERIT, pb.redirectOutput());
    }
}
