package dev.marble.runtime.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.kernels.Elementwise;
import java.lang.foreign.Arena;
import org.junit.jupiter.api.Test;

class Upsample2DTest {
    @Test
    void resizeFollowsTorchNearestIndices() {
        try (Arena arena = Arena.ofShared()) {
            // one channel, 1×3 → 1×5: torch picks floor(i · 3/5) = 0, 0, 1, 1, 2
            Tensor x = Tensor.fromFloats(arena, new float[] {10, 20, 30}, 1, 1, 3, 1);
            Tensor out = Tensor.allocate(arena, DType.F32, 1, 2, 5, 1);
            Upsample2D.resizeNearest(x, out);
            assertArrayEquals(new float[] {10, 10, 20, 20, 30, 10, 10, 20, 20, 30}, out.toFloatArray());
        }
    }

    @Test
    void resizeToDoubleSizeEqualsTheTwoTimesKernel() {
        try (Arena arena = Arena.ofShared()) {
            float[] v = new float[2 * 3 * 5 * 7];
            for (int i = 0; i < v.length; i++) {
                v[i] = i;
            }
            Tensor x = Tensor.fromFloats(arena, v, 2, 3, 5, 7);
            Tensor a = Tensor.allocate(arena, DType.F32, 2, 6, 10, 7);
            Tensor b = Tensor.allocate(arena, DType.F32, 2, 6, 10, 7);
            Upsample2D.resizeNearest(x, a);
            Elementwise.upsampleNearest2x(x, b);
            assertArrayEquals(b.toFloatArray(), a.toFloatArray());
        }
    }
}
