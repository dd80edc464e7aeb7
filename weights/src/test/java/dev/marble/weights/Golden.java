package dev.marble.weights;

import dev.marble.tensors.MarbleException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Locates ../shared/golden for tests (system property marble.golden, set by the build). */
public final class Golden {
    private Golden() {
    }

    public static Path dir() {
        String p = System.getProperty("marble.golden");
        if (p == null) {
            throw new MarbleException("system property marble.golden is not set (run the tests through Maven)");
        }
        Path d = Path.of(p).normalize();
        if (!Files.isDirectory(d)) {
            throw new MarbleException("golden reference folder " + d + " is missing: it must sit at ../shared/golden beside the project root");
        }
        return d;
    }

    public static Path path(String relative) {
        return dir().resolve(relative);
    }
}
