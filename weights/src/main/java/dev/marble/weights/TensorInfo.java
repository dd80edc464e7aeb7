package dev.marble.weights;

import dev.marble.tensors.DType;
import java.util.Arrays;

/** One header entry of a safetensors file: dtype, shape and byte range within the data section. */
public record TensorInfo(String name, DType dtype, long[] shape, long begin, long end) {
    public long byteSize() {
        return end - begin;
    }

    public long numel() {
        long n = 1;
        for (long s : shape) {
            n *= s;
        }
        return n;
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    @Override
    public String toString() {
        return name + " " + dtype.safetensorsName() + Arrays.toString(shape);
    }
}
