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
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Loading rules of the layers and blocks; their numerics are covered by the kernel and golden tests. */
class LayersTest {
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

    /** loadMatrix and loadConv1x1 take only their own weight shape; a 1×1 conv is the same GEMM. */
    @Test
    void strictLinearLoadsCheckTheWeightKind() {
        try (Arena a = Arena.ofShared(); Workspace ws = new Workspace()) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            float[] w = {1, 2, 3, 4, 5, 6}; // [out 2, in 3]
            m.put("p.weight", of(a, DType.F32, w, 2, 3));
            m.put("p.bias", of(a, DType.F32, new float[] {0.5f, -1}, 2));
            m.put("c.weight", of(a, DType.BF16, w, 2, 3, 1, 1));
            m.put("c.bias", of(a, DType.F32, new float[] {0.5f, -1}, 2));
            WeightScope root = WeightScope.root(new MapSource(m));
            Tensor x = Tensor.fromFloats(a, new float[] {1, 0, -1, 2, 1, 0}, 1, 2, 1, 3); // [B, H, W, in]
            float[] expected = {1 - 3 + 0.5f, 4 - 6 - 1, 2 + 2 + 0.5f, 8 + 5 - 1};
            assertArrayEquals(expected, Linear.loadMatrix(root.at("p"), 3, 2, true, a).forward(ws, x).toFloatArray());
            assertArrayEquals(expected, Linear.loadConv1x1(root.at("c"), 3, 2, a).forward(ws, x).toFloatArray());
            MarbleException e = assertThrows(MarbleException.class, () -> Linear.loadMatrix(root.at("c"), 3, 2, true, a));
            assertTrue(e.getMessage().contains("'c.weight'") && e.getMessage().contains("[2, 3]"), e.getMessage());
            e = assertThrows(MarbleException.class, () -> Linear.loadConv1x1(root.at("p"), 3, 2, a));
            assertTrue(e.getMessage().contains("'p.weight'") && e.getMessage().contains("[2, 3, 1, 1]"), e.getMessage());
        }
    }

    /**
     * The two ownership paths of ResnetBlock2D (x left to the caller; x given back and, with a shortcut,
     * normalized in place) compute the same, with and without conv_shortcut and time_emb_proj; forward
     * leaves x untouched. The numerics themselves are held to the golden UNet and VAE outputs.
     */
    @ParameterizedTest
    @CsvSource({"4,6,3", "4,4,3", "6,4,0", "4,4,0"})
    void resnetPathsAgree(int in, int out, int temb) {
        Random rnd = new Random(in * 100 + out * 10 + temb);
        try (Arena a = Arena.ofShared(); Workspace ws = new Workspace()) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            m.put("norm1.weight", random(a, rnd, in));
            m.put("norm1.bias", random(a, rnd, in));
            m.put("conv1.weight", random(a, rnd, out, in, 3, 3));
            m.put("conv1.bias", random(a, rnd, out));
            m.put("norm2.weight", random(a, rnd, out));
            m.put("norm2.bias", random(a, rnd, out));
            m.put("conv2.weight", random(a, rnd, out, out, 3, 3));
            m.put("conv2.bias", random(a, rnd, out));
            if (in != out) {
                m.put("conv_shortcut.weight", random(a, rnd, out, in, 1, 1));
                m.put("conv_shortcut.bias", random(a, rnd, out));
            }
            if (temb > 0) {
                m.put("time_emb_proj.weight", random(a, rnd, out, temb));
                m.put("time_emb_proj.bias", random(a, rnd, out));
            }
            WeightScope root = WeightScope.root(new MapSource(m));
            ResnetBlock2D block = temb > 0
                    ? ResnetBlock2D.loadWithTimeEmbedding(root, in, out, temb, 2, 1e-5f, Activation.Kind.SILU, 2f, a)
                    : ResnetBlock2D.load(root, in, out, 2, 1e-5f, Activation.Kind.GELU, a);
            assertEquals(Set.of(), root.unusedKeys());
            Tensor tembAct = temb > 0 ? random(a, rnd, 2, temb) : null; // [B, T]
            Tensor x = ws.take(DType.F32, 2, 5, 3, in); // [B, H, W, in]
            random(a, rnd, 2, 5, 3, in).copyTo(x);
            float[] x0 = x.toFloatArray();

            float[] kept = block.forward(ws, x, tembAct).toFloatArray();
            assertArrayEquals(x0, x.toFloatArray(), "forward changed its input");
            float[] given = block.forwardAndGive(ws, x, tembAct).toFloatArray();
            assertArrayEquals(kept, given);
        }
    }

    private static Tensor random(Arena a, Random rnd, long... shape) {
        float[] v = new float[Math.toIntExact(Arrays.stream(shape).reduce(1, Math::multiplyExact))];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return Tensor.fromFloats(a, v, shape);
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
