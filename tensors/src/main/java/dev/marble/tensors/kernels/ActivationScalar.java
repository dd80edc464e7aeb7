package dev.marble.tensors.kernels;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The scalar twins of {@link Activation}; the elementary functions are computed in double. */
final class ActivationScalar {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int GRAIN = 4096;

    private ActivationScalar() {
    }

    static float silu(float x) {
        return (float) (x / (1.0 + Math.exp(-x)));
    }

    /** torch's exact GELU: x/2 · (1 + erf(x/√2)). */
    static float gelu(float x) {
        return (float) (0.5 * x * (1.0 + erf(x / Math.sqrt(2.0))));
    }

    /** The tanh approximation: x/2 · (1 + tanh(√(2/π)(x + 0.044715x³))). */
    static float geluTanh(float x) {
        double u = Math.sqrt(2.0 / Math.PI) * (x + 0.044715 * x * (double) x * x);
        return (float) (0.5 * x * (1.0 + Math.tanh(u)));
    }

    /** CLIP's quick GELU: x · sigmoid(1.702x). */
    static float quickGelu(float x) {
        return (float) (x / (1.0 + Math.exp(-1.702 * x)));
    }

    /**
     * erf in double, from the complementary error function's Chebyshev fit (Numerical Recipes'
     * erfc, fractional error below 1.2e-7), well inside float precision after the GELU product.
     */
    static double erf(double x) {
        double z = Math.abs(x);
        double t = 1.0 / (1.0 + 0.5 * z);
        double ans = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
                + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
                + t * (-0.82215223 + t * 0.17087277)))))))));
        return x >= 0 ? 1.0 - ans : ans - 1.0;
    }

    static float apply(Activation.Kind kind, float v) {
        return switch (kind) {
            case SILU -> silu(v);
            case GELU -> gelu(v);
            case GELU_TANH -> geluTanh(v);
            case QUICK_GELU -> quickGelu(v);
            case IDENTITY -> v;
        };
    }

    static void apply(Activation.Kind kind, Tensor x, Tensor out) {
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        int n = Math.toIntExact(x.numel());
        Parallel.forChunks(n, GRAIN, (chunk, i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                os.setAtIndex(F, i, apply(kind, xs.getAtIndex(F, i)));
            }
        });
    }

    static void geglu(Tensor x, Tensor out, int m, int n) {
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        Parallel.forChunks(m, (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long in = (long) r * 2 * n;
                long o = (long) r * n;
                for (int j = 0; j < n; j++) {
                    os.setAtIndex(F, o + j, xs.getAtIndex(F, in + j) * gelu(xs.getAtIndex(F, in + n + j)));
                }
            }
        });
    }

    static void softmax(Tensor x, Tensor out, int m, int n) {
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        Parallel.forChunks(m, (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long base = (long) r * n;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) {
                    max = Math.max(max, xs.getAtIndex(F, base + j));
                }
                float sum = 0f;
                for (int j = 0; j < n; j++) {
                    float e = (float) Math.exp(xs.getAtIndex(F, base + j) - max);
                    os.setAtIndex(F, base + j, e);
                    sum += e;
                }
                float inv = 1f / sum;
                for (int j = 0; j < n; j++) {
                    os.setAtIndex(F, base + j, os.getAtIndex(F, base + j) * inv);
                }
            }
        });
    }
}
