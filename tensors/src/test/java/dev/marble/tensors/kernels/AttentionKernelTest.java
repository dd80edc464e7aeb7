package dev.marble.tensors.kernels;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.util.Random;
import org.junit.jupiter.api.Test;

class AttentionKernelTest {
    /** One case: batch, query and key lengths, heads, head size, causal, input magnitude. */
    private record Case(int b, int lq, int lk, int heads, int d, boolean causal, float amp) {
    }

    private static final Case[] CASES = {
        new Case(1, 1, 1, 1, 4, false, 1),
        new Case(2, 7, 7, 2, 8, true, 1),
        new Case(1, 77, 77, 4, 8, true, 2),
        new Case(2, 77, 77, 3, 64, true, 1),
        new Case(1, 130, 77, 8, 40, false, 1),
        new Case(2, 33, 130, 5, 80, false, 1),
        new Case(1, 130, 130, 2, 40, true, 3),
        new Case(1, 17, 300, 1, 160, false, 1),
        new Case(2, 64, 1, 8, 40, false, 1),
        new Case(1, 19, 23, 3, 3, false, 1),
        new Case(1, 45, 45, 2, 6, true, 1),
        new Case(1, 150, 150, 1, 64, true, 1),
        // Enough keys for the head-by-head work order.
        new Case(2, 37, 450, 3, 40, false, 1),
        new Case(1, 390, 390, 2, 8, true, 1),
        // Large scores: the running max must keep every exponent finite.
        new Case(1, 40, 150, 2, 40, false, 12),
    };

    @Test
    void simdMatchesScalarAndDoubleReference() {
        Random rnd = new Random(42);
        for (Case cs : CASES) {
            try (Arena arena = Arena.ofShared()) {
                int c = cs.heads * cs.d;
                float[] qa = random(rnd, cs.b * cs.lq * c, cs.amp);
                float[] ka = random(rnd, cs.b * cs.lk * c, cs.amp);
                float[] va = random(rnd, cs.b * cs.lk * c, 1);
                Tensor q = Tensor.fromFloats(arena, qa, cs.b, cs.lq, c);
                Tensor k = Tensor.fromFloats(arena, ka, cs.b, cs.lk, c);
                Tensor v = Tensor.fromFloats(arena, va, cs.b, cs.lk, c);
                float scale = (float) (1 / Math.sqrt(cs.d));
                Tensor fast = Tensor.allocate(arena, DType.F32, cs.b, cs.lq, c);
                Tensor slow = Tensor.allocate(arena, DType.F32, cs.b, cs.lq, c);
                Attention.forward(q, k, v, cs.heads, scale, cs.causal, fast);
                AttentionScalar.forward(q, k, v, cs.heads, scale, cs.causal, slow);
                double[] maxScore = new double[1];
                double[] ref = reference(qa, ka, va, cs, scale, maxScore);
                String what = cs + " at " + Simd.describe();
                // Outputs are convex combinations of V (|v| ≤ 1), so errors are absolute. Float scores
                // carry a rounding error of ~ε·|s| that the exponential turns into a relative error
                // of the weights: the bound grows with the largest score.
                double tol = 2.5e-7 * Math.max(4, maxScore[0]);
                assertClose(ref, fast.toFloatArray(), tol, "SIMD vs double, " + what);
                assertClose(ref, slow.toFloatArray(), tol, "scalar vs double, " + what);
            }
        }
    }

    @Test
    void outputMayReplaceTheQueries() {
        Random rnd = new Random(11);
        for (Case cs : CASES) {
            try (Arena arena = Arena.ofShared()) {
                int c = cs.heads * cs.d;
                float[] qa = random(rnd, cs.b * cs.lq * c, cs.amp);
                Tensor q = Tensor.fromFloats(arena, qa, cs.b, cs.lq, c);
                Tensor k = Tensor.fromFloats(arena, random(rnd, cs.b * cs.lk * c, cs.amp), cs.b, cs.lk, c);
                Tensor v = Tensor.fromFloats(arena, random(rnd, cs.b * cs.lk * c, 1), cs.b, cs.lk, c);
                float scale = (float) (1 / Math.sqrt(cs.d));
                Tensor apart = Tensor.allocate(arena, DType.F32, cs.b, cs.lq, c);
                Attention.forward(q, k, v, cs.heads, scale, cs.causal, apart);
                Attention.forward(q, k, v, cs.heads, scale, cs.causal, q);
                org.junit.jupiter.api.Assertions.assertArrayEquals(apart.toFloatArray(), q.toFloatArray(),
                        "SIMD in place, " + cs + " at " + Simd.describe());
                Tensor q2 = Tensor.fromFloats(arena, qa, cs.b, cs.lq, c);
                AttentionScalar.forward(q2, k, v, cs.heads, scale, cs.causal, apart);
                AttentionScalar.forward(q2, k, v, cs.heads, scale, cs.causal, q2);
                org.junit.jupiter.api.Assertions.assertArrayEquals(apart.toFloatArray(), q2.toFloatArray(),
                        "scalar in place, " + cs);
            }
        }
    }

    @Test
    void resultDoesNotDependOnThreadCount() {
        Random rnd = new Random(7);
        Case cs = new Case(2, 100, 100, 3, 40, true, 1);
        int c = cs.heads * cs.d;
        int before = Parallel.threads();
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.fromFloats(arena, random(rnd, cs.b * cs.lq * c, 1), cs.b, cs.lq, c);
            Tensor k = Tensor.fromFloats(arena, random(rnd, cs.b * cs.lk * c, 1), cs.b, cs.lk, c);
            Tensor v = Tensor.fromFloats(arena, random(rnd, cs.b * cs.lk * c, 1), cs.b, cs.lk, c);
            Tensor one = Tensor.allocate(arena, DType.F32, cs.b, cs.lq, c);
            Tensor many = Tensor.allocate(arena, DType.F32, cs.b, cs.lq, c);
            Parallel.setThreads(1);
            Attention.forward(q, k, v, cs.heads, 0.2f, true, one);
            Parallel.setThreads(3);
            Attention.forward(q, k, v, cs.heads, 0.2f, true, many);
            assertClose(toDouble(one.toFloatArray()), many.toFloatArray(), 0, "1 vs 3 threads");
        } finally {
            Parallel.setThreads(before);
        }
    }

    @Test
    void badArgumentsAreRejected() {
        try (Arena arena = Arena.ofShared()) {
            Tensor q = Tensor.allocate(arena, DType.F32, 1, 5, 12);
            Tensor k = Tensor.allocate(arena, DType.F32, 1, 6, 12);
            Tensor out = Tensor.allocate(arena, DType.F32, 1, 5, 12);
            assertThrows(MarbleException.class, () -> Attention.forward(q, k, k, 5, 1f, false, out));
            assertThrows(MarbleException.class, () -> Attention.forward(q, k, k, 2, 1f, true, out));
            Tensor wrong = Tensor.allocate(arena, DType.F32, 1, 6, 12);
            assertThrows(MarbleException.class, () -> Attention.forward(q, k, k, 2, 1f, false, wrong));
            Tensor half = Tensor.allocate(arena, DType.F16, 1, 6, 12);
            assertThrows(MarbleException.class, () -> Attention.forward(q, half, k, 2, 1f, false, out));
        }
    }

    /** Naive attention in double; maxScore[0] receives the largest |score|. */
    private static double[] reference(float[] q, float[] k, float[] v, Case cs, float scale, double[] maxScore) {
        int c = cs.heads * cs.d;
        double[] out = new double[cs.b * cs.lq * c];
        double[] s = new double[cs.lk];
        for (int bi = 0; bi < cs.b; bi++) {
            for (int h = 0; h < cs.heads; h++) {
                for (int i = 0; i < cs.lq; i++) {
                    int qb = (bi * cs.lq + i) * c + h * cs.d;
                    int keys = cs.causal ? i + 1 : cs.lk;
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < keys; j++) {
                        int kb = (bi * cs.lk + j) * c + h * cs.d;
                        double dot = 0;
                        for (int e = 0; e < cs.d; e++) {
                            dot += (double) q[qb + e] * k[kb + e];
                        }
                        s[j] = dot * scale;
                        max = Math.max(max, s[j]);
                        maxScore[0] = Math.max(maxScore[0], Math.abs(s[j]));
                    }
                    double sum = 0;
                    for (int j = 0; j < keys; j++) {
                        s[j] = Math.exp(s[j] - max);
                        sum += s[j];
                    }
                    for (int e = 0; e < cs.d; e++) {
                        double acc = 0;
                        for (int j = 0; j < keys; j++) {
                            acc += s[j] * v[(bi * cs.lk + j) * c + h * cs.d + e];
                        }
                        out[qb + e] = acc / sum;
                    }
                }
            }
        }
        return out;
    }

    static float[] random(Random rnd, int n, float amp) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (rnd.nextFloat() * 2 - 1) * amp;
        }
        return a;
    }

    static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    /** max|got - ref| ≤ tol · max(1, max|ref|). */
    static void assertClose(double[] ref, float[] got, double tol, String what) {
        double maxRef = 1;
        for (double r : ref) {
            maxRef = Math.max(maxRef, Math.abs(r));
        }
        double worst = 0;
        int at = -1;
        for (int i = 0; i < ref.length; i++) {
            double e = Math.abs(got[i] - ref[i]);
            if (!(e <= worst)) {
                worst = e;
                at = i;
            }
        }
        double w = worst;
        int a = at;
        double allowed = tol * maxRef;
        assertTrue(worst <= allowed, () -> what + ": max error " + w + " at " + a + " (ref " + ref[a]
                + ", got " + got[a] + "), allowed " + allowed);
    }
}
