package dev.marble.weights;

import dev.marble.tensors.Tensor;
import java.util.Set;

/** Named tensors from one or more files: a model component's weights. */
public interface TensorSource extends AutoCloseable {
    /** Whether a tensor of that name exists. */
    boolean contains(String key);

    /** The tensor, a zero-copy view where possible; a one-line error names the key if it is missing. */
    Tensor get(String key);

    /** All keys. */
    Set<String> keys();

    /** Where the tensors come from, for error messages. */
    String describe();

    @Override
    void close();
}
