package dev.marble.runtime.schedulers;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.marble.tensors.MarbleException;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

/**
 * A diffusers scheduler config ({@code scheduler/scheduler_config.json}), immutable. Like
 * {@code SchedulerClass.from_config(config, **overrides)}: keys present in the file win, absent (or
 * null) keys take the default of the scheduler class that reads them, and keys a class does not know
 * are ignored. Each scheduler passes its own diffusers defaults to the typed getters.
 */
public final class SchedulerConfig {
    /** diffusers writes non-finite floats (e.g. {@code "lambda_min_clipped": -Infinity}) into its JSON. */
    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    private final ObjectNode json;
    private final String source;

    private SchedulerConfig(ObjectNode json, String source) {
        this.json = json;
        this.source = source;
    }

    /** Reads a scheduler_config.json. */
    public static SchedulerConfig read(Path file) {
        JsonNode n;
        try {
            n = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new MarbleException(file + ": cannot read scheduler config: " + e.getMessage(), e);
        }
        if (n == null || !n.isObject()) {
            throw new MarbleException(file + ": scheduler config is not a JSON object");
        }
        return new SchedulerConfig((ObjectNode) n, file.toString());
    }

    /** Wraps an already parsed JSON object (copied). */
    public static SchedulerConfig of(JsonNode node) {
        if (node == null || !node.isObject()) {
            throw new MarbleException("scheduler config is not a JSON object");
        }
        return new SchedulerConfig(((ObjectNode) node).deepCopy(), "scheduler config");
    }

    /** An empty config: every value is the scheduler class's default. */
    public static SchedulerConfig empty() {
        return new SchedulerConfig(JSON.createObjectNode(), "scheduler config");
    }

    /** A copy with {@code key} set, like a keyword argument of {@code from_config}. */
    public SchedulerConfig with(String key, Object value) {
        ObjectNode copy = json.deepCopy();
        copy.set(key, JSON.valueToTree(value));
        return new SchedulerConfig(copy, source);
    }

    /** A copy with every entry of {@code overrides} set. */
    public SchedulerConfig with(Map<String, ?> overrides) {
        ObjectNode copy = json.deepCopy();
        overrides.forEach((k, v) -> copy.set(k, JSON.valueToTree(v)));
        return new SchedulerConfig(copy, source);
    }

    /** The diffusers class that wrote the config ({@code _class_name}), or null. */
    public String className() {
        JsonNode n = json.get("_class_name");
        return n == null || n.isNull() ? null : n.asText();
    }

    /** True if the key is present with a non-null value. */
    public boolean has(String key) {
        JsonNode n = json.get(key);
        return n != null && !n.isNull();
    }

    public int getInt(String key, int dflt) {
        JsonNode n = json.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isIntegralNumber() || !n.canConvertToInt()) {
            throw bad(key, "an integer", n);
        }
        return n.intValue();
    }

    public double getDouble(String key, double dflt) {
        JsonNode n = json.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isNumber()) {
            throw bad(key, "a number", n);
        }
        return n.doubleValue();
    }

    /** A number, or null when absent or null (diffusers' {@code Optional[float] = None}). */
    public Double getOptionalDouble(String key) {
        return has(key) ? getDouble(key, 0) : null;
    }

    public boolean getBoolean(String key, boolean dflt) {
        JsonNode n = json.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isBoolean()) {
            throw bad(key, "true or false", n);
        }
        return n.booleanValue();
    }

    public String getString(String key, String dflt) {
        JsonNode n = json.get(key);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.isTextual()) {
            throw bad(key, "a string", n);
        }
        return n.textValue();
    }

    /** A list of numbers (e.g. {@code trained_betas}), or null when absent or null. */
    public double[] getDoubleArray(String key) {
        JsonNode n = json.get(key);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!n.isArray()) {
            throw bad(key, "a list of numbers", n);
        }
        double[] out = new double[n.size()];
        for (int i = 0; i < out.length; i++) {
            if (!n.get(i).isNumber()) {
                throw bad(key, "a list of numbers", n.get(i));
            }
            out[i] = n.get(i).doubleValue();
        }
        return out;
    }

    /** The error for a value the scheduler cannot use. */
    MarbleException unsupported(String key, Object value, String scheduler) {
        return new MarbleException(source + ": " + key + " = " + value + " is not supported by " + scheduler);
    }

    private MarbleException bad(String key, String expected, JsonNode got) {
        String text = got.toString();
        if (text.length() > 40) {
            text = text.substring(0, 40) + "...";
        }
        return new MarbleException(source + ": '" + key + "' must be " + expected + ", got " + text);
    }

    @Override
    public String toString() {
        return json.toString();
    }
}
