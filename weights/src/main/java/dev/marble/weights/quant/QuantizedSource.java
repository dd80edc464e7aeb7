package dev.marble.weights.quant;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.TensorSource;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A model component's weights as stored by Marble's quantizer ({@link QuantStorage}): each quantized
 * weight appears under its own name, as a {@link QuantizedTensor} whose planes are zero-copy views of
 * the mapped file ({@link #quantized}); every other tensor is passed through unchanged. The whole
 * layout is checked at open, so a model load never meets a half-valid weight.
 */
public final class QuantizedSource implements TensorSource {
    private final TensorSource base;
    private final Map<String, QuantizedTensor> quantized;
    private final Set<String> keys;

    private QuantizedSource(TensorSource base, Map<String, QuantizedTensor> quantized, Set<String> keys) {
        this.base = base;
        this.quantized = quantized;
        this.keys = keys;
    }

    /** Opens one safetensors file; the file is closed again if it is inconsistent. */
    public static QuantizedSource open(Path file) {
        SafetensorsSource src = SafetensorsSource.open(file);
        try {
            return wrap(src, src.metadata());
        } catch (RuntimeException e) {
            src.close();
            throw e;
        }
    }

    /** Whether {@code metadata} marks a file that holds quantized weights. */
    public static boolean isQuantized(Map<String, String> metadata) {
        return metadata.keySet().stream().anyMatch(k -> k.equals(QuantStorage.VERSION_KEY)
                || k.startsWith(QuantStorage.TENSOR_KEY_PREFIX));
    }

    /**
     * Checks {@code base} against its {@code __metadata__} and exposes its quantized weights. A file
     * without Marble metadata passes through unchanged. Closing the result closes {@code base}.
     */
    public static QuantizedSource wrap(TensorSource base, Map<String, String> metadata) {
        String src = base.describe();
        String version = metadata.get(QuantStorage.VERSION_KEY);
        Map<String, QuantizedTensor> quantized = new HashMap<>();
        Map<String, String> planeOwner = new HashMap<>();
        if (version == null && isQuantized(metadata)) {
            throw new MarbleException(src + ": " + QuantStorage.TENSOR_KEY_PREFIX + "* metadata without "
                    + QuantStorage.VERSION_KEY);
        }
        if (version != null && !version.equals(Integer.toString(QuantStorage.VERSION))) {
            throw new MarbleException(src + ": Marble quantization format version '" + version
                    + "' is not supported (this build reads " + QuantStorage.VERSION + ")");
        }
        for (Map.Entry<String, String> m : metadata.entrySet()) {
            if (!m.getKey().startsWith(QuantStorage.TENSOR_KEY_PREFIX)) {
                continue;
            }
            String name = m.getKey().substring(QuantStorage.TENSOR_KEY_PREFIX.length());
            String what = src + ": tensor '" + name + "'";
            QuantStorage.Entry e = QuantStorage.parse(what, m.getValue());
            if (base.contains(name)) {
                throw new MarbleException(what + " is stored both plain and quantized");
            }
            List<Tensor> planes = new ArrayList<>();
            for (QuantFormat.Plane p : e.format().planes()) {
                String pn = QuantStorage.planeName(name, p);
                if (!base.contains(pn)) {
                    throw new MarbleException(what + " (" + e.format() + "): missing its " + p.suffix() + " tensor '" + pn + "'");
                }
                planes.add(base.get(pn));
                planeOwner.put(pn, name);
            }
            quantized.put(name, QuantizedTensor.of(what, e.format(), e.shape(), planes));
        }
        Set<String> keys = new LinkedHashSet<>();
        for (String k : base.keys()) {
            String owner = planeOwner.get(k);
            if (owner != null) {
                keys.add(owner);
            } else if (version != null && looksLikePlane(k)) {
                throw new MarbleException(src + ": tensor '" + k + "' looks like a quantized plane but __metadata__ has no "
                        + QuantStorage.TENSOR_KEY_PREFIX + k.substring(0, k.lastIndexOf('.')) + " entry");
            } else {
                keys.add(k);
            }
        }
        return new QuantizedSource(base, Collections.unmodifiableMap(quantized), Collections.unmodifiableSet(keys));
    }

    private static boolean looksLikePlane(String key) {
        for (QuantFormat f : QuantFormat.all()) {
            for (QuantFormat.Plane p : f.planes()) {
                if (key.endsWith("." + p.suffix())) {
                    return true;
                }
            }
        }
        return false;
    }

    @Override
    public boolean contains(String key) {
        return keys.contains(key);
    }

    /** A plain tensor; a quantized weight must be read through {@link #quantized}. */
    @Override
    public Tensor get(String key) {
        QuantizedTensor q = quantized.get(key);
        if (q != null) {
            throw new MarbleException(base.describe() + ": tensor '" + key + "' is quantized (" + q.format()
                    + ") and cannot be read as a plain tensor");
        }
        if (!keys.contains(key)) {
            throw new MarbleException(base.describe() + ": missing tensor '" + key + "'");
        }
        return base.get(key);
    }

    @Override
    public QuantizedTensor quantized(String key) {
        return quantized.get(key);
    }

    /** Names of the quantized weights. */
    public Set<String> quantizedKeys() {
        return quantized.keySet();
    }

    @Override
    public Set<String> keys() {
        return keys;
    }

    @Override
    public String describe() {
        return base.describe();
    }

    @Override
    public void close() {
        base.close();
    }
}
