package dev.marble.weights.ldm;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.TensorSource;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Collections;
import java.util.Map;
import java.util.Set;

/**
 * A view of another source under new key names, where a renamed tensor may also take a new shape
 * of the same size (LDM stores the VAE's attention projections as 1×1 convolutions [C, C, 1, 1];
 * diffusers names them as linears [C, C]). The base source stays open: its owner closes it.
 *
 * <p>Quantized weights of the base ({@link TensorSource#quantized}) pass through under the new names.
 * Their blocks run along dimension 1, so a row range stays a row range of every plane, and a new
 * shape is accepted when it keeps the rows and the row length (a 1×1 conv [C, C, 1, 1] viewed as a
 * linear [C, C]); any other reshape of a quantized weight is refused with a one-line error.
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
        QuantizedTensor q = base.quantized(e.sourceKey());
        if (q != null) {
            throw new MarbleException(description + ": tensor '" + key + "' (stored as '" + e.sourceKey() + "') is quantized ("
                    + q.format() + ") and cannot be read as a plain tensor");
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

    /** The base's quantized weight under this view's name, row range and shape; null when it is plain or absent. */
    @Override
    public QuantizedTensor quantized(String key) {
        Entry e = entries.get(key);
        QuantizedTensor q = e == null ? null : base.quantized(e.sourceKey());
        if (q == null) {
            return null;
        }
        String what = description + ": tensor '" + key + "' (stored as '" + e.sourceKey() + "', " + q + ")";
        QuantFormat f = q.format();
        long[] shape = q.shape();
        List<Tensor> planes = new ArrayList<>();
        for (int p = 0; p < f.planes().size(); p++) {
            planes.add(q.plane(p));
        }
        if (e.rowFrom() >= 0) {
            if (e.rowTo() > shape[0]) {
                throw new MarbleException(what + " has fewer than " + e.rowTo() + " rows");
            }
            planes.replaceAll(t -> t.slice(0, e.rowFrom(), e.rowTo())); // rows are the planes' outermost dimension
            shape[0] = e.rowTo() - e.rowFrom();
        }
        if (e.shape() != null && !Arrays.equals(e.shape(), shape)) {
            long[] to = e.shape();
            if (!QuantFormat.quantizable(to) || to[1] != shape[1] || rows(to) != rows(shape)) {
                throw new MarbleException(what + " cannot be viewed as " + Arrays.toString(to)
                        + ": a quantized weight keeps its rows and its row length (dimension 1)");
            }
            for (int p = 0; p < planes.size(); p++) {
                planes.set(p, planes.get(p).reshape(QuantizedTensor.planeShape(f, to, p)));
            }
            shape = to;
        }
        return QuantizedTensor.of(what, f, shape, planes);
    }

    /** Quantized rows of a weight of {@code shape}: N, or OC · KH · KW. */
    private static long rows(long[] shape) {
        return shape[0] * (shape.length == 4 ? shape[2] * shape[3] : 1);
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
