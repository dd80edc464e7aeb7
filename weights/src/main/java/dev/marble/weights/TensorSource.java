package dev.marble.weights;

import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantizedTensor;
import java.util.Set;

/** Named tensors from one or more files: a model component's weights. */
public interface TensorSource extends AutoCloseable {
    /** Whether a tensor of that name exists. */
    boolean contains(String key);

    /** The tensor, a zero-copy view where possible; a one-line error names the key if it is missing. */
    Tensor get(String key);

    /**
     * The weight {@code key} in its quantized form (zero-copy planes), or null when it is stored as a
     * plain tensor or is absent. Only a source that reads Marble's quantized files has any.
     */
    default QuantizedTensor quantized(String key) {
        return null;
    }

    /**
     * The logical shape of tensor {@code key}, whether it is stored plain or quantized (for a quantized
     * weight, its PyTorch shape, not a plane's).
     */
    default long[] shape(String key) {
        QuantizedTensor q = quantized(key);
        return q != null ? q.shape() : get(key).shape();
    }

    /** All keys. */
    Set<String> keys();

    /** Where the tensors come from, for error messages. */
    String describe();

    @Override
    void close();
}
