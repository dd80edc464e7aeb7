package dev.marble.runtime.unet;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.runtime.nn.Linear;
import dev.marble.runtime.nn.MapSource;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The token-chunked feed-forward equals the whole-tensor composition, across chunk borders and a ragged tail. */
class FeedForwardTest {
    @Test
    void chunkedEqualsWholeTensor() {
        int d = 8;
        int f = 4 * d;
        int batch = 2;
        int tokens = 1300; // 2600 rows: two full chunks of 1024 and a ragged one
        Random rnd = new Random(7);
        try (Arena arena = Arena.ofShared(); Workspace ws = new Workspace()) {
            Map<String, Tensor> weights = Map.of(
                    "net.0.proj.weight", random(arena, rnd, 2 * f, d),
                    "net.0.proj.bias", random(arena, rnd, 2 * f),
                    "net.2.weight", random(arena, rnd, d, f),
                    "net.2.bias", random(arena, rnd, d));
            WeightScope w = WeightScope.root(new MapSource(weights));
            FeedForward ff = FeedForward.load(w, d, arena);
            Tensor x = random(arena, rnd, batch, tokens, d);

            float[] chunked = ff.forward(ws, x).toFloatArray();

            Linear proj = Linear.loadMatrix(w.at("net").at(0).at("proj"), d, 2 * f, true, arena);
            Linear out = Linear.loadMatrix(w.at("net").at(2), f, d, true, arena);
            Tensor p = proj.forward(ws, x); // [B, L, 2F]
            Tensor g = ws.take(DType.F32, batch, tokens, f); // [B, L, F]
            Activation.geglu(p, g);
            float[] whole = out.forward(ws, g).toFloatArray();
            // equal up to the GEMM's freedom to block rows differently (a SIMD kernel may)
            double err = Golden.maxAbsDiff(whole, chunked);
            assertTrue(err <= 1e-6 * Golden.maxAbs(whole), "max diff " + err);
        }
    }

    private static Tensor random(Arena arena, Random rnd, long... shape) {
        long n = 1;
        for (long s : shape) {
            n *= s;
        }
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return Tensor.fromFloats(arena, v, shape);
    }
}
