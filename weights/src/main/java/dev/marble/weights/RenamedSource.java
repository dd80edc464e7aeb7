package dev.marble.weights;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.util.Collections;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Another source seen through a key map: key {@code k} of this view is key {@code newToOld.get(k)}
 * of the base. Single-file checkpoints use it to present their LDM keys under diffusers names, so the
 * model classes load either layout through the same {@link WeightScope} (which then reports unused
 * keys in the new names). The view does not own the base: several views may share one file, and
 * {@link #close()} leaves the base open.
 */
public final class RenamedSource implements TensorSource {
    private final TensorSource base;
    private final Map<String, String> newToOld;

    /** Every old key must exist in {@code base}; several new keys may share one old key. */
    public RenamedSource(TensorSource base, Map<String, String> newToOld) {
        this.base = base;
        this.newToOld = Collections.unmodifiableMap(new LinkedHashMap<>(newToOld));
        for (Map.Entry<String, String> e : this.newToOld.entrySet()) {
            if (e.getKey() == null || e.getValue() == null) {
                throw new MarbleException(base.describe() + ": key map entry " + e.getKey() + " -> " + e.getValue()
                        + " has a null name");
            }
            if (!base.contains(e.getValue())) {
                throw new MarbleException(base.describe() + ": key '" + e.getKey() + "' maps to tensor '"
                        + e.getValue() + "', which is missing");
            }
        }
    }

    /** The base keys that start with {@code prefix}, with the prefix removed. */
    public static RenamedSource stripPrefix(TensorSource base, String prefix) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String k : new TreeSet<>(base.keys())) {
            if (k.startsWith(prefix)) {
                m.put(k.substring(prefix.length()), k);
            }
        }
        return new RenamedSource(base, m);
    }

    @Override
    public boolean contains(String key) {
        return newToOld.containsKey(key);
    }

    @Override
    public Tensor get(String key) {
        String old = newToOld.get(key);
        if (old == null) {
            throw new MarbleException(describe() + ": missing tensor '" + key + "'");
        }
        return base.get(old);
    }

    @Override
    public Set<String> keys() {
        return newToOld.keySet();
    }

    /** The base key behind {@code key}, or a one-line error if this view has no such key. */
    public String baseKey(String key) {
        String old = newToOld.get(key);
        if (old == null) {
            throw new MarbleException(describe() + ": missing tensor '" + key + "'");
        }
        return old;
    }

    /** Base keys that no key of this view reaches, sorted. */
    public Set<String> unmappedBaseKeys() {
        Set<String> reached = new HashSet<>(newToOld.values());
        Set<String> s = new TreeSet<>();
        for (String k : base.keys()) {
            if (!reached.contains(k)) {
                s.add(k);
            }
        }
        return Collections.unmodifiableSet(s);
    }

    public TensorSource base() {
        return base;
    }

    @Override
    public String describe() {
        return base.describe() + " (renamed keys)";
    }

    /** Leaves the base open: it belongs to whoever opened it. */
    @Override
    public void close() {
    }
}
