package dev.marble.weights.quant;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.TensorSource;
import java.lang.foreign.Arena;
import java.util.Comparator;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Quantization on load: an unquantized component's weights seen as {@code marble quantize} would have
 * written them, without a file. The weights that {@link QuantRules} quantize come from
 * {@link #quantized} in their format (and {@link #get} refuses them, as {@link QuantizedSource} does);
 * the tensors they narrow come from {@link #get} as F16; everything else passes through. The values are
 * exactly those of the quantized file ({@link ModelQuantizer} makes the same calls).
 *
 * <p><b>Memory.</b> Quantized planes and narrowed copies are temporaries: a model packs or copies each
 * weight into its own memory as it reads it. They live in an arena per module (the key up to its last
 * dot, e.g. {@code down_blocks.0.resnets.0.conv1}), which is freed as soon as a key of another module is
 * asked for, and by {@link #close()}. So at most one module's weight and bias are held at a time, and
 * none after loading; the source's mapped pages are dropped from the resident set as each tensor is
 * quantized or narrowed. A loader must therefore finish with a module's tensors before it reads another
 * module's (every layer of this runtime packs a module's weights in one go); a tensor kept longer is
 * freed memory, and reading it fails loudly rather than silently.
 */
public final class QuantizingSource implements TensorSource {
    private final TensorSource base;
    private final String component;
    private final QuantRules rules;
    /** The current module's temporaries by key (Tensor or QuantizedTensor). */
    private final Map<String, Object> temporaries = new HashMap<>();
    private String module;
    private Arena arena;
    private long liveBytes;
    private long peakBytes;
    private long totalBytes;
    private boolean closed;

    private QuantizingSource(TensorSource base, String component, QuantRules rules) {
        this.base = base;
        this.component = component;
        this.rules = rules;
    }

    /**
     * {@code base} (the weights of {@code component}, one of {@link QuantRules#COMPONENTS}) quantized by
     * {@code rules}. A source that already holds quantized weights is refused with a one-line error:
     * quantizing them again would only add error, and the type the caller asked for would not be the one
     * it gets. Closing the result frees its temporaries; {@code base} stays open (its owner closes it).
     */
    public static QuantizingSource wrap(TensorSource base, String component, QuantRules rules) {
        Set<QuantFormat> formats = new TreeSet<>(Comparator.comparingInt(QuantFormat.all()::indexOf));
        int quantized = 0;
        for (String k : base.keys()) {
            QuantizedTensor q = base.quantized(k);
            if (q != null) {
                formats.add(q.format());
                quantized++;
            }
        }
        if (quantized > 0) {
            throw new MarbleException(base.describe() + ": already quantized (" + quantized + " weights in "
                    + String.join(", ", formats.stream().map(QuantFormat::id).toList())
                    + "); load it as it is, quantizing on load needs F32, F16 or BF16 weights");
        }
        return new QuantizingSource(base, component, rules);
    }

    @Override
    public boolean contains(String key) {
        return base.contains(key);
    }

    private QuantRules.Target target(String key) {
        return rules.decide(component, key, base.shape(key)).target();
    }

    /** A plain tensor, narrowed to F16 where the rules say so; a weight the rules quantize must be read through {@link #quantized}. */
    @Override
    public synchronized Tensor get(String key) {
        if (!base.contains(key)) {
            return base.get(key); // the base's one-line error
        }
        return switch (target(key)) {
            case QuantRules.Target.Quantize q -> throw new MarbleException(base.describe() + ": tensor '" + key
                    + "' is quantized on load (" + q.format() + ") and cannot be read as a plain tensor");
            case QuantRules.Target.Half h -> {
                Tensor t = base.get(key);
                Object held = enter(key).get(key);
                if (held != null) {
                    yield (Tensor) held;
                }
                Tensor half = ModelQuantizer.toHalf(t, arena);
                if (half == t) {
                    yield t;
                }
                release(t);
                yield (Tensor) hold(key, half, half.byteSize());
            }
            case QuantRules.Target.Keep k -> base.get(key);
        };
    }

    /** The weight quantized to the rules' format (planes valid until another module is read), or null when the rules keep it plain. */
    @Override
    public synchronized QuantizedTensor quantized(String key) {
        if (!base.contains(key) || !(target(key) instanceof QuantRules.Target.Quantize q)) {
            return null;
        }
        Object held = enter(key).get(key);
        if (held != null) {
            return (QuantizedTensor) held;
        }
        Tensor t = base.get(key);
        QuantizedTensor qt = QuantizedTensor.quantize(base.describe() + ": tensor '" + key + "'", t, q.format(), arena);
        release(t);
        return (QuantizedTensor) hold(key, qt, qt.byteSize());
    }

    /**
     * Drops a mapped source tensor's pages from the resident set once its quantized or narrowed copy
     * exists, as the packers do for the weights they copy: the layer packs the copy, so nothing would
     * release the file's pages until the mapping closes, and a load would hold the whole file resident.
     */
    private static void release(Tensor t) {
        if (t.data().isMapped()) {
            t.data().unload();
        }
    }

    /** The logical shape, without quantizing anything. */
    @Override
    public long[] shape(String key) {
        return base.shape(key);
    }

    /** Switches to the module of {@code key}, freeing the previous module's temporaries; returns the current ones. */
    private Map<String, Object> enter(String key) {
        if (closed) {
            throw new IllegalStateException(describe() + " is closed");
        }
        int dot = key.lastIndexOf('.');
        String m = dot < 0 ? "" : key.substring(0, dot);
        if (!m.equals(module)) {
            free();
            module = m;
        }
        if (arena == null) {
            arena = Arena.ofShared(); // shared: QuantizedTensor.quantize works on the pool then
        }
        return temporaries;
    }

    private Object hold(String key, Object value, long bytes) {
        temporaries.put(key, value);
        liveBytes += bytes;
        totalBytes += bytes;
        peakBytes = Math.max(peakBytes, liveBytes);
        return value;
    }

    private void free() {
        if (arena != null) {
            arena.close();
            arena = null;
        }
        temporaries.clear();
        liveBytes = 0;
    }

    /** Bytes of temporaries held now (0 once closed). */
    public synchronized long liveBytes() {
        return liveBytes;
    }

    /** The most bytes of temporaries held at once. */
    public synchronized long peakBytes() {
        return peakBytes;
    }

    /** Bytes of all temporaries made so far: what a model-wide copy would have held. */
    public synchronized long totalBytes() {
        return totalBytes;
    }

    @Override
    public Set<String> keys() {
        return base.keys();
    }

    @Override
    public String describe() {
        return base.describe() + " (quantized on load)";
    }

    /** Frees the temporaries; the base source stays open. */
    @Override
    public synchronized void close() {
        free();
        module = null;
        closed = true;
    }
}
