package dev.marble.runtime.nn;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.TensorSource;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Linear and Conv2dLayer built from quantized weights compute exactly what they compute on the
 * weights' decoded values (the kernels decode to the format's reference values), and their keys count
 * as used.
 */
class QuantizedLayersTest {
    /** Plain tensors plus quantized weights, which (as in a quantized file) cannot be read plain. */
    private record QuantSource(Map<String, Tensor> plain, Map<String, QuantizedTensor> quant) implements TensorSource {
        @Override
        public boolean contains(String key) {
            return plain.containsKey(key) || quant.containsKey(key);
        }

        @Override
        public Tensor get(String key) {
            if (quant.containsKey(key)) {
                throw new MarbleException("tensor '" + key + "' is quantized");
            }
            return plain.get(key);
        }

        @Override
        public QuantizedTensor quantized(String key) {
            return quant.get(key);
        }

        @Override
        public Set<String> keys() {
            Set<String> k = new LinkedHashSet<>(plain.keySet());
            k.addAll(quant.keySet());
            return k;
        }

        @Override
        public String describe() {
            return "quantized in-memory weights";
        }

        @Override
        public void close() {
        }
    }

    private static Tensor random(Arena a, SplittableRandom rnd, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return Tensor.fromFloats(a, v, shape);
    }

    private static void assertSame(Tensor want, Tensor got, String what) {
        float[] w = want.toFloatArray();
        float[] g = got.toFloatArray();
        assertEquals(w.length, g.length, what);
        for (int i = 0; i < w.length; i++) {
            if (Float.floatToRawIntBits(w[i]) != Float.floatToRawIntBits(g[i])) {
                fail(what + ": element " + i + " is " + g[i] + ", " + w[i] + " on the decoded weights");
            }
        }
    }

    @Test
    void quantizedLayersEqualPlainLayersOnTheDecodedWeights() {
        SplittableRandom rnd = new SplittableRandom(8);
        for (QuantFormat f : QuantFormat.all()) {
            try (Arena a = Arena.ofShared(); Workspace ws = new Workspace()) {
                Map<String, Tensor> weights = new LinkedHashMap<>();
                weights.put("fc.weight", random(a, rnd, 40, 96));        // Linear [out, in]
                weights.put("proj.weight", random(a, rnd, 24, 64, 1, 1)); // 1×1 conv as a Linear
                weights.put("conv.weight", random(a, rnd, 21, 64, 3, 3));
                Map<String, Tensor> plain = new LinkedHashMap<>();
                Map<String, Tensor> rest = new LinkedHashMap<>();
                Map<String, QuantizedTensor> quant = new LinkedHashMap<>();
                for (Map.Entry<String, Tensor> e : weights.entrySet()) {
                    QuantizedTensor q = QuantizedTensor.quantize(e.getKey(), e.getValue(), f, a);
                    quant.put(e.getKey(), q);
                    plain.put(e.getKey(), q.dequantize(a));
                }
                rest.put("fc.bias", random(a, rnd, 40));
                rest.put("proj.bias", random(a, rnd, 24));
                rest.put("conv.bias", random(a, rnd, 21));
                plain.putAll(rest);
                WeightScope qs = WeightScope.root(new QuantSource(rest, quant));
                WeightScope ps = WeightScope.root(new MapSource(plain));

                Tensor x = random(a, rnd, 3, 96);
                assertSame(Linear.load(ps.at("fc"), 96, 40, true, a).forward(ws, x),
                        Linear.load(qs.at("fc"), 96, 40, true, a).forward(ws, x), f + " Linear");
                assertSame(Linear.loadMatrix(ps.at("fc"), 96, 40, false, a).forward(ws, x),
                        Linear.loadMatrix(qs.at("fc"), 96, 40, false, a).forward(ws, x), f + " Linear.loadMatrix");
                Tensor img = random(a, rnd, 2, 7, 5, 64); // [B, H, W, C]
                assertSame(Linear.loadConv1x1(ps.at("proj"), 64, 24, a).forward(ws, img),
                        Linear.loadConv1x1(qs.at("proj"), 64, 24, a).forward(ws, img), f + " 1×1 conv");
                assertSame(Linear.load(ps.at("proj"), 64, 24, true, a).forward(ws, img),
                        Linear.load(qs.at("proj"), 64, 24, true, a).forward(ws, img), f + " conv-shaped Linear");
                assertSame(Conv2dLayer.load(ps.at("conv"), 64, 21, 3, 2, 1, a).forward(ws, img),
                        Conv2dLayer.load(qs.at("conv"), 64, 21, 3, 2, 1, a).forward(ws, img), f + " 3×3 conv");
                assertEquals(Set.of(), qs.unusedKeys(), "every key read");
            }
        }
    }

    @Test
    void quantizedWeightsOfTheWrongShapeAreRefused() {
        SplittableRandom rnd = new SplittableRandom(9);
        try (Arena a = Arena.ofShared()) {
            QuantFormat f = QuantFormat.parse("q8_0");
            Map<String, QuantizedTensor> quant = Map.of(
                    "fc.weight", QuantizedTensor.quantize("fc", random(a, rnd, 8, 64), f, a),
                    "conv.weight", QuantizedTensor.quantize("conv", random(a, rnd, 8, 32, 3, 3), f, a));
            Map<String, Tensor> rest = Map.of("fc.bias", random(a, rnd, 8), "conv.bias", random(a, rnd, 8));
            WeightScope w = WeightScope.root(new QuantSource(rest, quant));
            MarbleException e = assertThrows(MarbleException.class, () -> Linear.load(w.at("fc"), 32, 8, true, a));
            assertTrue(e.getMessage().contains("'fc.weight'") && e.getMessage().contains("[8, 32]"), e.getMessage());
            e = assertThrows(MarbleException.class, () -> Linear.loadConv1x1(w.at("fc"), 64, 8, a));
            assertTrue(e.getMessage().contains("'fc.weight'") && e.getMessage().contains("[8, 64, 1, 1]"), e.getMessage());
            e = assertThrows(MarbleException.class, () -> Conv2dLayer.load(w.at("conv"), 32, 8, 1, 1, 0, a));
            assertTrue(e.getMessage().contains("'conv.weight'") && e.getMessage().contains("[8, 32, 1, 1]"), e.getMessage());
            e = assertThrows(MarbleException.class, () -> Linear.loadMatrix(w.at("conv"), 32, 8, true, a));
            assertTrue(e.getMessage().contains("'conv.weight'"), e.getMessage());
        }
    }
}
