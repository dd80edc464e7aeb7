package dev.marble.tools.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Properties;
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

    /** -Dmarble.* given to the launching JVM reach the child; other properties and the relaunch marker do not. */
    @Test
    void forwardsMarbleProperties() {
        Properties p = new Properties();
        p.setProperty("marble.conv.winograd", "false");
        p.setProperty("marble.vector.bits", "128");
        p.setProperty("marble.launched", "true");
        p.setProperty("user.dir", "/tmp");
        p.setProperty("marblex", "1");
        assertEquals(List.of("-Dmarble.conv.winograd=false", "-Dmarble.vector.bits=128"), Launcher.forwardedProperties(p));
    }
}
