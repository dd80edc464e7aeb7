package dev.marble.tensors.kernels;

import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.util.Random;
import org.junit.jupiter.api.Test;

class NormKernelTest {
    /** batch, positions, channels, groups, input offset, input spread. */
    private record Case(int b, int l, int c, int groups, float offset, float spread) {
    }

    private static final Case[] GROUP_CASES = {
        new Case(1, 1, 4, 2, 0, 1),
        new Case(2, 7, 3, 1, 0, 1),
        new Case(1, 77, 17, 1, 0.5f, 2),
        new Case(2, 130, 40, 8, -1, 1),
        new Case(1, 33, 33, 3, 0, 1),
        new Case(2, 16, 320, 32, 0.2f, 1),
        // A large group (2^17 values, VAE groups reach 2^20) with a mean well away from zero.
        new Case(1, 1024, 128, 1, 3, 0.5f),
    };

    @Test
    void groupNormMatchesScalarAndDouble() {
        Random rnd = new Random(12);
        try (Arena arena = Arena.ofShared()) {
            for (Case cs : GROUP_CASES) {
                int n = cs.b * cs.l * cs.c;
                float[] xv = new float[n];
                for (int i = 0; i < n; i++) {
                    xv[i] = cs.offset + (float) rnd.nextGaussian() * cs.spread;
                }
                float[] gv = AttentionKernelTest.random(rnd, cs.c, 2);
                float[] bv = AttentionKernelTest.random(rnd, cs.c, 1);
                Tensor x = Tensor.fromFloats(arena, xv, cs.b, cs.l, cs.c);
                Tensor gamma = Tensor.fromFloats(arena, gv, cs.c);
                Tensor beta = Tensor.fromFloats(arena, bv, cs.c);
                for (boolean silu : new boolean[] {false, true}) {
                    Tensor fast = Tensor.allocate(arena, DType.F32, cs.b, cs.l, cs.c);
                    Tensor slow = Tensor.allocate(arena, DType.F32, cs.b, cs.l, cs.c);
                    Norm.groupNorm(x, gamma, beta, cs.groups, 1e-5f, silu, fast);
                    NormScalar.groupNorm(x, gamma, beta, cs.groups, 1e-5f, silu, slow);
                    double[] ref = groupRef(xv, gv, bv, cs, 1e-5, silu);
                    String what = cs + " silu=" + silu + " at " + Simd.describe();
                    // Float inputs near the offset carry ulp(offset) of their own: 2e-6 of the scale.
                    AttentionKernelTest.assertClose(ref, fast.toFloatArray(), 2e-6, "SIMD vs double, " + what);
                    AttentionKernelTest.assertClose(ref, slow.toFloatArray(), 2e-6, "scalar vs double, " + what);
                }
            }
            // Rank 4 [B, H, W, C] is the same computation; in place works.
            Tensor x4 = Tensor.fromFloats(arena, AttentionKernelTest.random(rnd, 2 * 5 * 3 * 12, 1), 2, 5, 3, 12);
            Tensor g = Tensor.fromFloats(arena, AttentionKernelTest.random(rnd, 12, 1), 12);
            Tensor o4 = Tensor.allocate(arena, DType.F32, 2, 5, 3, 12);
            Norm.groupNorm(x4, g, g, 4, 1e-6f, false, o4);
            Norm.groupNorm(x4, g, g, 4, 1e-6f, false, x4);
            AttentionKernelTest.assertClose(AttentionKernelTest.toDouble(o4.toFloatArray()), x4.toFloatArray(), 0,
                    "in place");
            assertThrows(MarbleException.class, () -> Norm.groupNorm(x4, g, g, 5, 1e-6f, false, o4));
        }
    }

    @Test
    void layerNormMatchesDouble() {
        Random rnd = new Random(13);
        try (Arena arena = Arena.ofShared()) {
            for (int c : new int[] {1, 3, 17, 40, 768, 1280}) {
                int rows = 1 + rnd.nextInt(20);
                float[] xv = AttentionKernelTest.random(rnd, rows * c, 3);
                for (int i = 0; i < xv.length; i++) {
                    xv[i] += 2;
                }
                float[] gv = AttentionKernelTest.random(rnd, c, 2);
                float[] bv = AttentionKernelTest.random(rnd, c, 1);
                Tensor x = Tensor.fromFloats(arena, xv, rows, c);
                Tensor gamma = Tensor.fromFloats(arena, gv, c);
                Tensor beta = Tensor.fromFloats(arena, bv, c);
                Tensor fast = Tensor.allocate(arena, DType.F32, rows, c);
                Tensor slow = Tensor.allocate(arena, DType.F32, rows, c);
                Norm.layerNorm(x, gamma, beta, 1e-5f, fast);
                NormScalar.layerNorm(x, gamma, beta, 1e-5f, slow);
                double[] ref = new double[rows * c];
                for (int r = 0; r < rows; r++) {
                    double m = 0;
                    for (int j = 0; j < c; j++) {
                        m += xv[r * c + j];
                    }
                    m /= c;
                    double v = 0;
                    for (int j = 0; j < c; j++) {
                        v += (xv[r * c + j] - m) * (xv[r * c + j] - m);
                    }
                    double rstd = 1 / Math.sqrt(v / c + 1e-5);
                    for (int j = 0; j < c; j++) {
                        ref[r * c + j] = (xv[r * c + j] - m) * rstd * gv[j] + bv[j];
                    }
                }
                AttentionKernelTest.assertClose(ref, fast.toFloatArray(), 2e-6, "SIMD layer norm C=" + c);
                AttentionKernelTest.assertClose(ref, slow.toFloatArray(), 2e-6, "scalar layer norm C=" + c);
            }
        }
    }

    private static double[] groupRef(float[] x, float[] g, float[] b, Case cs, double eps, boolean silu) {
        int cg = cs.c / cs.groups;
        double[] out = new double[x.length];
        for (int bi = 0; bi < cs.b; bi++) {
            for (int gi = 0; gi < cs.groups; gi++) {
                double m = 0;
                for (int p = 0; p < cs.l; p++) {
                    for (int j = 0; j < cg; j++) {
                        m += x[(bi * cs.l + p) * cs.c + gi * cg + j];
                    }
                }
                m /= (double) cs.l * cg;
                double v = 0;
                for (int p = 0; p < cs.l; p++) {
                    for (int j = 0; j < cg; j++) {
                        double d = x[(bi * cs.l + p) * cs.c + gi * cg + j] - m;
                        v += d * d;
                    }
                }
                double rstd = 1 / Math.sqrt(v / ((double) cs.l * cg) + eps);
                for (int p = 0; p < cs.l; p++) {
                    for (int j = 0; j < cg; j++) {
                        int at = (bi * cs.l + p) * cs.c + gi * cg + j;
                        double y = (x[at] - m) * rstd * g[gi * cg + j] + b[gi * cg + j];
                        out[at] = silu ? y / (1 + Math.exp(-y)) : y;
                    }
                }
            }
        }
        return out;
    }
}
