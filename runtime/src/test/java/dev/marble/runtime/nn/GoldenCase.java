package dev.marble.runtime.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.tensors.Tensor;
import dev.marble.weights.SafetensorsFile;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * One case of the golden reference set (../shared/golden, passed as system property
 * {@code marble.golden}): its manifest entry and its tensors. Implements the manifest's pass rule
 * max|out − ref| ≤ rel · max|ref|.
 */
public final class GoldenCase implements AutoCloseable {
    private static JsonNode manifest;

    private final Path root;
    private final JsonNode entry;
    private final SafetensorsFile file;

    private GoldenCase(Path root, JsonNode entry, SafetensorsFile file) {
        this.root = root;
        this.entry = entry;
        this.file = file;
    }

    /** The golden directory; fails the test with a clear message when it is not configured. */
    public static Path root() {
        String p = System.getProperty("marble.golden");
        if (p == null || p.isBlank()) {
            fail("system property marble.golden is not set (it must point at shared/golden)");
        }
        Path root = Path.of(p);
        if (!Files.isRegularFile(root.resolve("manifest.json"))) {
            fail("golden directory " + root + " has no manifest.json (marble.golden must point at shared/golden)");
        }
        return root;
    }

    /** Opens the case with that id. */
    public static GoldenCase open(String id) {
        Path root = root();
        JsonNode m = manifest(root);
        for (JsonNode c : m.get("cases")) {
            if (c.get("id").asText().equals(id)) {
                return new GoldenCase(root, c, SafetensorsFile.open(root.resolve(c.get("file").asText())));
            }
        }
        throw new AssertionError("golden case '" + id + "' is not in " + root.resolve("manifest.json"));
    }

    private static synchronized JsonNode manifest(Path root) {
        if (manifest == null) {
            try {
                // The manifest holds -Infinity (a scheduler's lambda_min_clipped), as Python's json writes it.
                manifest = new ObjectMapper().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature()).readTree(root.resolve("manifest.json").toFile());
            } catch (IOException e) {
                throw new AssertionError("cannot read " + root.resolve("manifest.json") + ": " + e.getMessage(), e);
            }
        }
        return manifest;
    }

    public String id() {
        return entry.get("id").asText();
    }

    /** The manifest entry. */
    public JsonNode entry() {
        return entry;
    }

    /** Whether the case was computed from the *.fp16.safetensors weights. */
    public boolean fp16Weights() {
        return entry.get("weights").asText().equals("fp16");
    }

    /** The folder of the case's model (diffusers layout). */
    public Path modelDir() {
        return root.resolve(manifest(root).get("models").get(entry.get("model").asText()).get("path").asText());
    }

    /** A component's weights file in the case's precision, e.g. {@code weightsFile("vae", "diffusion_pytorch_model")}. */
    public Path weightsFile(String component, String stem) {
        return modelDir().resolve(component).resolve(stem + (fp16Weights() ? ".fp16" : "") + ".safetensors");
    }

    /** A tensor of the case file (inputs, outputs and "debug.*" share one namespace). */
    public Tensor tensor(String name) {
        return file.tensor(name);
    }

    /**
     * Asserts the pass rule for output {@code name} and returns the max error. Prints one line with the
     * error, the allowed error and their ratio, for the report.
     */
    public double check(String name, Tensor actual) {
        JsonNode tol = entry.get("tolerance").get(name);
        if (tol == null) {
            throw new AssertionError(id() + ": no tolerance for output '" + name + "'");
        }
        return compare(name, actual, tensor(name), tol.get("rel").asDouble(), true);
    }

    /**
     * Compares {@code actual} with a debug tensor (not part of the pass rule) using the rule with
     * {@code rel}; returns the max error. Used to localize a mismatch, so it only asserts when asked.
     */
    public double compareDebug(String name, Tensor actual, double rel, boolean assertIt) {
        return compare(name, actual, tensor(name), rel, assertIt);
    }

    private double compare(String name, Tensor actual, Tensor ref, double rel, boolean assertIt) {
        assertArrayEquals(ref.shape(), actual.shape(), id() + ": shape of " + name);
        float[] a = actual.toFloatArray();
        float[] r = ref.toFloatArray();
        double maxErr = 0;
        double scale = 0;
        for (int i = 0; i < r.length; i++) {
            maxErr = Math.max(maxErr, Math.abs((double) a[i] - r[i]));
            scale = Math.max(scale, Math.abs(r[i]));
        }
        if (Double.isNaN(maxErr) || hasNaN(a)) {
            maxErr = Double.NaN;
        }
        double atol = rel * scale;
        System.out.printf(Locale.ROOT, "golden %-38s %-30s max|err| %.3e  atol %.3e  (%.3f of atol)%n",
                id(), name, maxErr, atol, maxErr / atol);
        if (assertIt) {
            assertTrue(maxErr <= atol, String.format(Locale.ROOT, "%s: %s max|out-ref| = %.3e exceeds atol %.3e",
                    id(), name, maxErr, atol));
        }
        return maxErr;
    }

    private static boolean hasNaN(float[] a) {
        for (float v : a) {
            if (Float.isNaN(v)) {
                return true;
            }
        }
        return false;
    }

    @Override
    public void close() {
        file.close();
    }
}
