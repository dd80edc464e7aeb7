package dev.marble.runtime.nn;

import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.TensorSource;
import java.lang.foreign.Arena;
import java.util.Set;
import java.util.function.Function;

/**
 * A weight source whose selected tensors come back quantized and decoded again (F32), so a model built
 * from it computes with exactly the values a quantized file holds: for measuring what quantization
 * costs before the kernels read quantized weights. 1-D tensors (norms, biases) are quantized as one
 * row [1, C] so that their sensitivity can be measured too; tensors that cannot be quantized at all
 * come back unchanged.
 */
public final class FakeQuantSource implements TensorSource {
    private final TensorSource base;
    private final Function<String, QuantFormat> formatOf;
    private final Arena arena;

    /** {@code formatOf} gives each key's format, or null to leave it as it is; decoded copies go to {@code arena}. */
    public FakeQuantSource(TensorSource base, Function<String, QuantFormat> formatOf, Arena arena) {
        this.base = base;
        this.formatOf = formatOf;
        this.arena = arena;
    }

    /** Whether {@code key} would be changed: it has a format and is quantizable (as [1, C] when 1-D). */
    public boolean affects(String key) {
        return formatOf.apply(key) != null && QuantFormat.quantizable(asMatrix(base.get(key).shape()));
    }

    private static long[] asMatrix(long[] shape) {
        return shape.length == 1 ? new long[] {1, shape[0]} : shape;
    }

    @Override
    public boolean contains(String key) {
        return base.contains(key);
    }

    @Override
    public Tensor get(String key) {
        Tensor t = base.get(key);
        if (!affects(key)) {
            return t;
        }
        long[] shape = t.shape();
        Tensor m = t.reshape(asMatrix(shape));
        return QuantizedTensor.quantize(key, m, formatOf.apply(key), arena).dequantize(arena).reshape(shape);
    }

    @Override
    public Set<String> keys() {
        return base.keys();
    }

    @Override
    public String describe() {
        return base.describe() + " (quantized and decoded)";
    }

    @Override
    public void close() {
        base.close();
    }
}
