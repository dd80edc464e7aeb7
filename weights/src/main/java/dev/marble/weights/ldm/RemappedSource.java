package dev.marble.weights.ldm;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.weights.TensorSource;
import java.util.Arrays;
import java.util.Collections;
import java.util.Map;
import java.util.Set;

/**
 * A view of another source under new key names, where a renamed tensor may also take a new shape
 * of the same size (LDM stores the VAE's attention projections as 1×1 convolutions [C, C, 1, 1];
 * diffusers names them as linears [C, C]). The base source stays open: its owner closes it.
 */
final class RemappedSource implements TensorSource {
    /**
     * A source key, optionally rows [rowFrom, rowTo) of its first dimension (OpenCLIP fuses q, k and
     * v into one in_proj tensor), viewed as {@code shape} (null = unchanged).
     */
    record Entry(String sourceKey, long rowFrom, long rowTo, long[] shape) {
        static Entry of(String sourceKey) {
            return new Entry(sourceKey, -1, -1, null);
        }

        static Entry reshaped(String sourceKey, long... shape) {
            return new Entry(sourceKey, -1, -1, shape);
        }

        static Entry rows(String sourceKey, long from, long to) {
            return new Entry(sourceKey, from, to, null);
        }
    }

    private final TensorSource base;
    private final Map<String, Entry> entries;
    private final String description;

    RemappedSource(TensorSource base, Map<String, Entry> entries, String description) {
        this.base = base;
        this.entries = Collections.unmodifiableMap(entries);
        this.description = description;
    }

    Entry entry(String key) {
        return entries.get(key);
    }

    @Override
    public boolean contains(String key) {
        return entries.containsKey(key);
    }

    @Override
    public Tensor get(String key) {
        Entry e = entries.get(key);
        if (e == null) {
            throw new MarbleException(description + ": missing tensor '" + key + "'");
        }
        Tensor t = base.get(e.sourceKey());
        if (e.rowFrom() >= 0) {
            if (e.rowTo() > t.dim(0)) {
                throw new MarbleException(description + ": tensor '" + e.sourceKey() + "' of shape "
                        + Arrays.toString(t.shape()) + " has fewer than " + e.rowTo() + " rows");
            }
            t = t.slice(0, e.rowFrom(), e.rowTo());
        }
        if (e.shape() == null) {
            return t;
        }
        if (t.numel() != Arrays.stream(e.shape()).reduce(1, (a, b) -> a * b)) {
            throw new MarbleException(description + ": tensor '" + e.sourceKey() + "' of shape "
                    + Arrays.toString(t.shape()) + " cannot be viewed as " + Arrays.toString(e.shape()));
        }
        return t.reshape(e.shape());
    }

    @Override
    public Set<String> keys() {
        return entries.keySet();
    }

    @Override
    public String describe() {
        return description;
    }

    @Override
    public void close() {
        // The base source belongs to the checkpoint that made this view.
    }
}
