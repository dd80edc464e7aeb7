package dev.marble.runtime.unet;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The shared golden folder (system property {@code marble.golden}) and its manifest. */
final class Golden {
    private static JsonNode manifest;

    private Golden() {
    }

    static Path dir() {
        String p = System.getProperty("marble.golden");
        if (p == null || p.isBlank()) {
            throw new IllegalStateException("system property marble.golden is not set (path to shared/golden)");
        }
        Path d = Path.of(p);
        if (!Files.isRegularFile(d.resolve("manifest.json"))) {
            throw new IllegalStateException("golden folder missing or incomplete: no manifest.json in "
                    + d.toAbsolutePath());
        }
        return d;
    }

    static synchronized JsonNode manifest() {
        if (manifest == null) {
            try {
                // the manifest writes Python floats, including -Infinity
                manifest = JsonMapper.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build()
                        .readTree(dir().resolve("manifest.json").toFile());
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return manifest;
    }

    /** The manifest entries of one component, in manifest order. */
    static List<JsonNode> cases(String component) {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode c : manifest().get("cases")) {
            if (component.equals(c.get("component").asText())) {
                out.add(c);
            }
        }
        return out;
    }

    static JsonNode caseById(String id) {
        for (JsonNode c : manifest().get("cases")) {
            if (id.equals(c.get("id").asText())) {
                return c;
            }
        }
        throw new IllegalStateException("manifest has no case " + id);
    }

    /** max_i |a_i − b_i|. */
    static double maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new AssertionError("length " + a.length + " vs " + b.length);
        }
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs((double) a[i] - b[i]));
        }
        return m;
    }

    static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }
}
