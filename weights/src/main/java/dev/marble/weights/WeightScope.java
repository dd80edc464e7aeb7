package dev.marble.weights;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantizedTensor;
import java.util.Arrays;
import java.util.Collections;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A key prefix over a {@link TensorSource}. Model constructors push checkpoint key segments
 * ({@code w.at("down_blocks").at(0).at("resnets")}) so that every field is reached by the name it
 * has in the checkpoint. Every tensor read is recorded, so a loader can report unused keys.
 */
public final class WeightScope {
    private final TensorSource source;
    private final String prefix;
    private final Set<String> used;

    private WeightScope(TensorSource source, String prefix, Set<String> used) {
        this.source = source;
        this.prefix = prefix;
        this.used = used;
    }

    /** The root scope of a source. */
    public static WeightScope root(TensorSource source) {
        return new WeightScope(source, "", ConcurrentHashMap.newKeySet());
    }

    /** The child scope {@code prefix + segment + "."}. */
    public WeightScope at(String segment) {
        return new WeightScope(source, prefix + segment + ".", used);
    }

    public WeightScope at(int index) {
        return at(Integer.toString(index));
    }

    /** Full key of {@code name} in this scope. */
    public String key(String name) {
        return prefix + name;
    }

    public boolean has(String name) {
        return source.contains(prefix + name);
    }

    /** Whether any key starts with this scope's prefix plus {@code segment + "."}. */
    public boolean hasScope(String segment) {
        String p = prefix + segment + ".";
        for (String k : source.keys()) {
            if (k.startsWith(p)) {
                return true;
            }
        }
        return false;
    }

    /** The tensor {@code name}, checked against {@code expectedShape} when one is given. */
    public Tensor tensor(String name, long... expectedShape) {
        String key = prefix + name;
        if (!source.contains(key)) {
            throw new MarbleException(source.describe() + ": missing tensor '" + key + "'"
                    + (expectedShape.length > 0 ? " (expected shape " + Arrays.toString(expectedShape) + ")" : ""));
        }
        Tensor t = source.get(key);
        if (expectedShape.length > 0 && !Arrays.equals(t.shape(), expectedShape)) {
            throw new MarbleException(source.describe() + ": tensor '" + key + "' has shape "
                    + Arrays.toString(t.shape()) + ", expected " + Arrays.toString(expectedShape));
        }
        used.add(key);
        return t;
    }

    /**
     * The weight {@code name} in its quantized form, checked against {@code expectedShape} (its logical
     * shape) when one is given; null when the source holds it as a plain tensor or not at all (then
     * {@link #tensor} reads it or reports it missing). A quantized weight is recorded as used: its
     * planes are not keys of their own ({@link TensorSource#quantized}).
     */
    public QuantizedTensor quantized(String name, long... expectedShape) {
        String key = prefix + name;
        QuantizedTensor q = source.quantized(key);
        if (q == null) {
            return null;
        }
        if (expectedShape.length > 0 && !Arrays.equals(q.shape(), expectedShape)) {
            throw new MarbleException(source.describe() + ": tensor '" + key + "' has shape "
                    + Arrays.toString(q.shape()) + ", expected " + Arrays.toString(expectedShape));
        }
        used.add(key);
        return q;
    }

    /** Keys of the source that no scope has read, sorted. */
    public Set<String> unusedKeys() {
        Set<String> s = new TreeSet<>(source.keys());
        s.removeAll(used);
        return Collections.unmodifiableSet(s);
    }

    public String prefix() {
        return prefix;
    }

    public TensorSource source() {
        return source;
    }
}
