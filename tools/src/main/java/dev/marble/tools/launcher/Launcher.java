package dev.marble.tools.launcher;

import java.io.File;
import java.lang.reflect.Method;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Properties;
import java.util.TreeSet;

/**
 * The jar's entry point, compiled for Java 17 so that it runs on whatever {@code java} is on the
 * PATH. Marble itself needs Java 25 with the Vector API module and native access enabled; when the
 * running JVM lacks either, this class starts the right JVM as a child with the right flags (the
 * flags live here and in the pom, nowhere else) and passes its exit code through. The user never
 * types a JVM flag.
 */
public final class Launcher {
    static final int REQUIRED_FEATURE = 25;
    static final String[] JVM_FLAGS = {
        "--add-modules", "jdk.incubator.vector",
        "--enable-native-access=ALL-UNNAMED",
        // Tensors live off-heap and the kernels allocate nothing once compiled, but until then the Vector
        // API's fallbacks make garbage fast; G1 answers by growing its young generation to hundreds of MB,
        // all of it resident. A small fixed young generation keeps the Java heap at tens of MB.
        "-XX:+UseSerialGC", "-Xmn32m",
        "-Dmarble.launched=true",
    };
    private static final String MAIN = "dev.marble.tools.Main";
    /**
     * glibc serves blocks below its mmap threshold from its heaps, and raises the threshold (up to
     * 32 MB) whenever a mapped block is freed, so the megabyte-sized activations and temporary weights
     * of a generation end up in heaps that keep their pages after free. A fixed 1 MB threshold maps
     * each of them on its own and unmaps it on free. 512² SD 1.5 q4_0, 2 steps: peak RSS of the UNet
     * stage 1004 → 804 MB, of the VAE decode 855 → 699 MB; denoising 49.9 → 55.2 s in the same quiet
     * run (repeats of one setting vary by ±3 s; 256 KB: 804 MB, 52.4 s). Other C libraries ignore it.
     */
    static final String MMAP_THRESHOLD_ENV = "MALLOC_MMAP_THRESHOLD_";
    private static final String MMAP_THRESHOLD = "1048576";

    private Launcher() {
    }

    public static void main(String[] args) throws Exception {
        boolean ready = Runtime.version().feature() >= REQUIRED_FEATURE
                && ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent();
        if (ready) {
            Method main = Class.forName(MAIN).getMethod("main", String[].class);
            main.invoke(null, (Object) args);
            return;
        }
        if (Boolean.getBoolean("marble.launched")) {
            System.err.println("marble: error: the relaunched JVM still lacks jdk.incubator.vector");
            System.exit(1);
        }
        Optional<Path> java = findJava();
        if (!java.isPresent()) {
            System.err.println("marble: error: Marble needs Java " + REQUIRED_FEATURE + " or newer (this is Java "
                    + Runtime.version().feature() + "); install it or set JAVA_HOME to it");
            System.exit(1);
        }
        String jar = new File(Launcher.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getPath();
        List<String> cmd = new ArrayList<>();
        cmd.add(java.get().toString());
        for (String f : JVM_FLAGS) {
            cmd.add(f);
        }
        cmd.addAll(forwardedProperties(System.getProperties()));
        cmd.add("-cp");
        cmd.add(jar);
        cmd.add(MAIN);
        for (String a : args) {
            cmd.add(a);
        }
        Process p = child(cmd).start();
        Thread stderr = new Thread(() -> {
            try {
                IncubatorWarningFilter.copy(p.getErrorStream(), System.err);
            } catch (java.io.IOException e) {
                // Our own stderr is gone: nothing left to report to.
            }
        }, "marble-stderr");
        stderr.start();
        // Ctrl-C reaches the child directly (same process group); wait for it to finish its cleanup
        // and for its last words on stderr.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                p.waitFor();
                stderr.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
        int code = p.waitFor();
        stderr.join();
        System.exit(code);
    }

    /**
     * Marble's own settings given to this JVM ({@code java -Dmarble.conv.winograd=false -jar marble.jar
     * ...}), as flags for the child, which is the JVM that reads them.
     */
    static List<String> forwardedProperties(Properties props) {
        List<String> flags = new ArrayList<>();
        for (String name : new TreeSet<>(props.stringPropertyNames())) {
            if (name.startsWith("marble.") && !name.equals("marble.launched")) {
                flags.add("-D" + name + "=" + props.getProperty(name));
            }
        }
        return flags;
    }

    /** The child JVM's process: our stdin and stdout, our environment plus the malloc setting unless the user set it. */
    static ProcessBuilder child(List<String> cmd) {
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectInput(ProcessBuilder.Redirect.INHERIT)
                .redirectOutput(ProcessBuilder.Redirect.INHERIT);
        pb.environment().putIfAbsent(MMAP_THRESHOLD_ENV, MMAP_THRESHOLD);
        return pb;
    }

    /** This JVM if it is new enough, else JAVA_HOME, else a JDK under /usr/lib/jvm. */
    static Optional<Path> findJava() {
        List<Path> candidates = new ArrayList<>();
        if (Runtime.version().feature() >= REQUIRED_FEATURE) {
            candidates.add(Paths.get(System.getProperty("java.home")));
        }
        String home = System.getenv("JAVA_HOME");
        if (home != null && !home.isEmpty()) {
            candidates.add(Paths.get(home));
        }
        Path jvms = Paths.get("/usr/lib/jvm");
        if (Files.isDirectory(jvms)) {
            try (java.util.stream.Stream<Path> s = Files.list(jvms)) {
                s.sorted().forEach(candidates::add);
            } catch (java.io.IOException ignored) {
                // No system JDK folder to search: fall through to the error message.
            }
        }
        for (Path c : candidates) {
            Path bin = c.resolve("bin").resolve("java");
            if (Files.isExecutable(bin) && releaseFeature(c) >= REQUIRED_FEATURE) {
                return Optional.of(bin);
            }
        }
        return Optional.empty();
    }

    /** JAVA_VERSION from a JDK's release file, as its feature number; 0 if unknown. */
    static int releaseFeature(Path javaHome) {
        try {
            for (String line : Files.readAllLines(javaHome.resolve("release"))) {
                if (line.startsWith("JAVA_VERSION=")) {
                    String v = line.substring("JAVA_VERSION=".length()).replace("\"", "");
                    int end = 0;
                    while (end < v.length() && Character.isDigit(v.charAt(end))) {
                        end++;
                    }
                    return end == 0 ? 0 : Integer.parseInt(v.substring(0, end));
                }
            }
        } catch (java.io.IOException | NumberFormatException e) {
            return 0;
        }
        return 0;
    }
}
