package dev.marble.runtime.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.TensorSource;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Loading rules of the layer wrappers; their numerics are covered by the kernel and golden tests. */
class LayersTest {
    /** Named in-memory tensors. */
    private record MapSource(Map<String, Tensor> tensors) implements TensorSource {
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
            return "test weights";
        }

        @Override
        public void close() {
        }
    }

    private static Tensor of(Arena a, DType dt, float[] v, long... shape) {
        Tensor t = Tensor.allocate(a, dt, shape);
        for (int i = 0; i < v.length; i++) {
            t.setFloat(v[i], unravel(i, shape));
        }
        return t;
    }

    private static long[] unravel(long i, long[] shape) {
        long[] idx = new long[shape.length];
        for (int d = shape.length - 1; d >= 0; d--) {
            idx[d] = i % shape[d];
            i /= shape[d];
        }
        return idx;
    }

    @Test
    void linearComputesXWtPlusBiasFromF16AndAcceptsConvShapedWeights() {
        try (Arena a = Arena.ofShared(); Workspace ws = new Workspace()) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            float[] w = {1, 2, 3, 4, 5, 6}; // [out 2, in 3]
            m.put("p.weight", of(a, DType.F16, w, 2, 3));
            m.put("p.bias", of(a, DType.F16, new float[] {0.5f, -1}, 2));
            m.put("c.weight", of(a, DType.F32, w, 2, 3, 1, 1));
            m.put("c.bias", of(a, DType.F32, new float[] {0.5f, -1}, 2));
            WeightScope root = WeightScope.root(new MapSource(m));
            Tensor x = Tensor.fromFloats(a, new float[] {1, 0, -1, 2, 1, 0}, 2, 3);
            float[] expected = {1 - 3 + 0.5f, 4 - 6 - 1, 2 + 2 + 0.5f, 8 + 5 - 1};
            assertArrayEquals(expected, Linear.load(root.at("p"), 3, 2, true, a).forward(ws, x).toFloatArray());
            assertArrayEquals(expected, Linear.load(root.at("c"), 3, 2, true, a).forward(ws, x).toFloatArray());
            MarbleException e = assertThrows(MarbleException.class, () -> Linear.load(root.at("p"), 2, 3, true, a));
            assertTrue(e.getMessage().contains("'p.weight'") && e.getMessage().contains("[3, 2]"), e.getMessage());
        }
    }

    @Test
    void conv2dLayerChecksShapesAndInputSize() {
        try (Arena a = Arena.ofShared(); Workspace ws = new Workspace()) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            m.put("conv.weight", Tensor.allocate(a, DType.F32, 4, 2, 3, 3));
            m.put("conv.bias", of(a, DType.F32, new float[] {1, 2, 3, 4}, 4));
            WeightScope root = WeightScope.root(new MapSource(m));
            assertThrows(MarbleException.class, () -> Conv2dLayer.load(root.at("conv"), 3, 4, 3, 1, 1, a));
            Conv2dLayer down = Conv2dLayer.load(root.at("conv"), 2, 4, 3, 2, 0, 0, 1, 1, a);
            Tensor y = down.forward(ws, Tensor.allocate(a, DType.F32, 1, 5, 6, 2));
            assertArrayEquals(new long[] {1, 2, 3, 4}, y.shape());
            assertEquals(4f, y.getFloat(0, 1, 2, 3)); // zero input: bias only
            MarbleException e = assertThrows(MarbleException.class,
                    () -> down.forward(ws, Tensor.allocate(a, DType.F32, 1, 1, 6, 2)));
            assertTrue(e.getMessage().contains("height 1"), e.getMessage());
        }
    }

    @Test
    void normsNormalize() {
        try (Arena a = Arena.ofShared(); Workspace ws = new Workspace()) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            m.put("n.weight", of(a, DType.F16, new float[] {1, 2}, 2));
            m.put("n.bias", of(a, DType.F16, new float[] {0, 1}, 2));
            WeightScope root = WeightScope.root(new MapSource(m));
            Tensor x = Tensor.fromFloats(a, new float[] {1, 3, 5, 9}, 2, 2); // rows (1, 3), (5, 9)
            float[] ln = LayerNormLayer.load(root.at("n"), 2, 0f, a).forward(ws, x).toFloatArray();
            assertArrayEquals(new float[] {-1, 3, -1, 3}, ln, 1e-6f);
            // one group over both channels and both positions of [1, 2, 2]: mean 4.5, var 8.75
            float[] gn = GroupNormLayer.load(root.at("n"), 2, 1, 0f, a)
                    .forward(ws, x.reshape(1, 2, 2), Activation.Kind.IDENTITY).toFloatArray();
            double s = Math.sqrt(8.75);
            assertArrayEquals(new float[] {(float) (-3.5 / s), (float) (2 * -1.5 / s + 1), (float) (0.5 / s),
                    (float) (2 * 4.5 / s + 1)}, gn, 1e-6f);
        }
    }
}
