package dev.marble.runtime.schedulers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.marble.weights.SafetensorsFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One case of ../shared/golden/manifest.json with its tensors, for the scheduler and RNG tests.
 * The golden folder comes from the system property {@code marble.golden}; a missing folder fails
 * the test with a message saying so.
 */
public final class GoldenCase implements AutoCloseable {
    /** diffusers writes -Infinity (e.g. lambda_min_clipped) into its JSON. */
    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build();
    private static JsonNode manifest;

    private final JsonNode entry;
    private final SafetensorsFile file;

    private GoldenCase(JsonNode entry, SafetensorsFile file) {
        this.entry = entry;
        this.file = file;
    }

    public static Path goldenDir() {
        String dir = System.getProperty("marble.golden");
        if (dir == null || dir.isBlank()) {
            fail("system property marble.golden is not set (it must point at shared/golden)");
        }
        Path p = Path.of(dir);
        if (!Files.isRegularFile(p.resolve("manifest.json"))) {
            fail("golden reference folder " + p.toAbsolutePath() + " has no manifest.json (marble.golden wrong?)");
        }
        return p;
    }

    static synchronized JsonNode manifest() {
        if (manifest == null) {
            try {
                manifest = JSON.readTree(goldenDir().resolve("manifest.json").toFile());
            } catch (IOException e) {
                fail("cannot read golden manifest: " + e.getMessage());
            }
        }
        return manifest;
    }

    /** Ids of every case whose id starts with {@code prefix}, in manifest order. */
    public static List<String> ids(String prefix) {
        List<String> ids = new ArrayList<>();
        for (JsonNode c : manifest().get("cases")) {
            if (c.get("id").asText().startsWith(prefix)) {
                ids.add(c.get("id").asText());
            }
        }
        assertTrue(!ids.isEmpty(), "no golden case id starts with " + prefix);
        return ids;
    }

    public static GoldenCase open(String id) {
        for (JsonNode c : manifest().get("cases")) {
            if (c.get("id").asText().equals(id)) {
                return new GoldenCase(c, SafetensorsFile.open(goldenDir().resolve(c.get("file").asText())));
            }
        }
        throw new AssertionError("golden case " + id + " is not in the manifest");
    }

    public String id() {
        return entry.get("id").asText();
    }

    public JsonNode entry() {
        return entry;
    }

    public JsonNode params() {
        return entry.get("params");
    }

    public boolean has(String name) {
        return file.contains(name);
    }

    public float[] floats(String name) {
        if (!file.contains(name)) {
            fail(id() + ": no tensor " + name);
        }
        return file.tensor(name).toFloatArray();
    }

    public long[] shape(String name) {
        return file.info(name).shape();
    }

    public List<String> names() {
        return file.names();
    }

    /** rel of the tolerance entry for {@code output}. */
    public double rel(String output) {
        JsonNode t = entry.get("tolerance").get(output);
        if (t == null || !t.has("rel")) {
            fail(id() + ": no tolerance for " + output);
        }
        return t.get("rel").asDouble();
    }

    /**
     * Checks {@code out} against the output tensor {@code name} with the case's stored tolerance
     * (max|out - ref| <= atol); returns max|out - ref| / scale for reports.
     */
    public double check(String name, float[] out) {
        JsonNode t = entry.get("tolerance").get(name);
        if (t == null || !t.has("atol")) {
            fail(id() + ": no tolerance for " + name);
        }
        float[] ref = floats(name);
        double err = maxAbsDiff(out, ref);
        double atol = t.get("atol").asDouble();
        if (!(err <= atol)) {
            fail(String.format("%s %s: max|out-ref| = %.3g > atol %.3g; out[0..4]=%s ref[0..4]=%s",
                    id(), name, err, atol, head(out), head(ref)));
        }
        double scale = t.get("scale").asDouble();
        return scale == 0 ? err : err / scale;
    }

    /** max_i |out_i - ref_i|. */
    public static double maxAbsDiff(float[] out, float[] ref) {
        assertEquals(ref.length, out.length, "element count");
        double m = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = Math.abs((double) out[i] - ref[i]);
            if (Double.isNaN(d)) {
                return Double.POSITIVE_INFINITY;
            }
            m = Math.max(m, d);
        }
        return m;
    }

    public static double maxAbs(float[] ref) {
        double m = 0;
        for (float v : ref) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    /**
     * Asserts the manifest pass rule max|out - ref| <= rel * max|ref| and returns the error relative
     * to max|ref| (for reports).
     */
    public static double assertClose(String what, float[] out, float[] ref, double rel) {
        double scale = maxAbs(ref);
        double err = maxAbsDiff(out, ref);
        double atol = rel * scale;
        if (!(err <= atol)) {
            fail(String.format("%s: max|out-ref| = %.3g > atol %.3g (rel %.1g x scale %.4g); out[0..4]=%s ref[0..4]=%s",
                    what, err, atol, rel, scale, head(out), head(ref)));
        }
        return scale == 0 ? err : err / scale;
    }

    private static String head(float[] a) {
        return Arrays.toString(Arrays.copyOf(a, Math.min(4, a.length)));
    }

    @Override
    public void close() {
        file.close();
    }
}
