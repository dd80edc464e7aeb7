package dev.marble.weights.quant;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.tensors.quant.Q4_K;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * How Marble stores a quantized weight inside an ordinary safetensors file (format version
 * {@value #VERSION}), so that any safetensors tool can still open and list it.
 *
 * <p>A weight {@code name} quantized in format F is stored as one tensor per plane of F, named
 * {@code name.<suffix>} ({@code name.qdata}, {@code name.qscale}, and for q4_k also {@code name.qmin}
 * and {@code name.qsuper}); dtypes and shapes are F's ({@link QuantFormat}, {@link QuantizedTensor#planeShape}).
 * {@code __metadata__} holds
 * <pre>
 * "marble.quant.version": "1"
 * "marble.quant.tensor.&lt;name&gt;": "{\"type\":\"q4_k\",\"block\":32,\"super_block\":256,\"shape\":[320,320,3,3]}"
 * </pre>
 * one entry per quantized weight: its format, block size (and q4_k's super-block size) and logical
 * PyTorch shape. One key per weight, rather than one JSON object, keeps shards' metadata mergeable.
 */
public final class QuantStorage {
    public static final int VERSION = 1;
    public static final String VERSION_KEY = "marble.quant.version";
    public static final String TENSOR_KEY_PREFIX = "marble.quant.tensor.";

    private static final ObjectMapper JSON = new ObjectMapper();

    private QuantStorage() {
    }

    /** The stored name of plane {@code p} of weight {@code name}. */
    public static String planeName(String name, QuantFormat.Plane p) {
        return name + "." + p.suffix();
    }

    /** Adds the planes of {@code q} as tensors and its entry (plus the version) to {@code metadata}. */
    public static void put(String name, QuantizedTensor q, Map<String, Tensor> tensors, Map<String, String> metadata) {
        List<QuantFormat.Plane> planes = q.format().planes();
        for (int p = 0; p < planes.size(); p++) {
            tensors.put(planeName(name, planes.get(p)), q.plane(p));
        }
        metadata.put(VERSION_KEY, Integer.toString(VERSION));
        metadata.put(TENSOR_KEY_PREFIX + name, entry(q.format(), q.shape()));
    }

    /** The metadata value of one weight. */
    static String entry(QuantFormat f, long[] shape) {
        ObjectNode n = JSON.createObjectNode();
        n.put("type", f.id());
        n.put("block", QuantFormat.BLOCK);
        if (f == Q4_K.INSTANCE) {
            n.put("super_block", QuantFormat.BLOCK * Q4_K.SUPER);
        }
        var s = n.putArray("shape");
        for (long d : shape) {
            s.add(d);
        }
        return n.toString();
    }

    /** A parsed metadata entry. */
    record Entry(QuantFormat format, long[] shape) {
    }

    /** Parses and checks one entry; {@code what} prefixes the one-line errors. */
    static Entry parse(String what, String json) {
        JsonNode n;
        try {
            n = JSON.readTree(json);
        } catch (IOException e) {
            throw new MarbleException(what + ": metadata is not valid JSON");
        }
        if (n == null || !n.isObject()) {
            throw new MarbleException(what + ": metadata is not a JSON object");
        }
        JsonNode type = n.get("type");
        if (type == null || !type.isTextual()) {
            throw new MarbleException(what + ": metadata has no quantization type");
        }
        QuantFormat f;
        try {
            f = QuantFormat.parse(type.asText());
        } catch (MarbleException e) {
            throw new MarbleException(what + ": " + e.getMessage());
        }
        requireInt(what, n, "block", QuantFormat.BLOCK, f);
        if (f == Q4_K.INSTANCE) {
            requireInt(what, n, "super_block", QuantFormat.BLOCK * Q4_K.SUPER, f);
        }
        JsonNode s = n.get("shape");
        if (s == null || !s.isArray()) {
            throw new MarbleException(what + ": metadata has no shape");
        }
        List<Long> dims = new ArrayList<>();
        for (JsonNode d : s) {
            if (!d.isIntegralNumber() || !d.canConvertToLong()) {
                throw new MarbleException(what + ": metadata shape " + s + " is not a list of integers");
            }
            dims.add(d.asLong());
        }
        long[] shape = dims.stream().mapToLong(Long::longValue).toArray();
        if (!QuantFormat.quantizable(shape)) {
            throw new MarbleException(what + ": shape " + s + " cannot be quantized (needs [N, K] or [OC, IC, KH, KW]"
                    + " with K or IC a positive multiple of " + QuantFormat.BLOCK + ")");
        }
        return new Entry(f, shape);
    }

    private static void requireInt(String what, JsonNode n, String field, int expected, QuantFormat f) {
        JsonNode v = n.get(field);
        if (v == null || !v.isIntegralNumber() || v.asLong() != expected) {
            throw new MarbleException(what + ": " + f + " " + field.replace('_', '-') + " size " + (v == null ? "missing" : v)
                    + " is not supported (this build reads " + expected + ")");
        }
    }
}
