package dev.marble.runtime.nn;

import dev.marble.tensors.Tensor;
import dev.marble.weights.TensorSource;
import java.util.Map;
import java.util.Set;

/** Named in-memory tensors as a weight source, for layer tests. */
public record MapSource(Map<String, Tensor> tensors) implements TensorSource {
    @Override
    public boolean contains(String key) {
        return tensors.containsKey(key);
    }

    @Override
    public Tensor get(String key) {
        return tensors.get(key);
    }

    @Override
    public Set<String> keys() {
        return tensors.keySet();
    }

    @Override
    public String describe() {
        return "in-memory weights";
    }

    @Override
    public void close() {
    }
}
