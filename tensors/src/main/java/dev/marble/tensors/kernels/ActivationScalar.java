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
     * g(t) ≈ erfc(z)·e^(z²) with t = 1/(1 + z/2), as polynomial coefficients in t (lowest first): a
     * degree-9 Chebyshev fit over z in [1, 10], relative error 1.7e-9. Shared with the SIMD form.
     */
    static final double[] ERFC_G = {
        3.633999772711949e-06, 0.2819835445469996, 0.2835860900697657, 0.23531773046314658,
        0.23289197917266852, -0.10011137069299911, 0.39046700858681227, -0.5916359040136742,
        0.33811172879068185, -0.07059329715557398};
    static final float[] ERFC_G_F = toFloats(ERFC_G);

    private static float[] toFloats(double[] a) {
        float[] f = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            f[i] = (float) a[i];
        }
        return f;
    }

    /**
     * erf in double: the Taylor series u·Σ (2/√π)(-1)^n u^(2n) / (n!(2n+1)) for |u| < 1 (18 terms,
     * below 1e-16 there), and 1 - e^(-z²)·g(t) beyond, with the fit {@link #ERFC_G}.
     */
    static double erf(double x) {
        double z = Math.abs(x);
        if (z < 1) {
            double u2 = x * x;
            double term = 2 / Math.sqrt(Math.PI);
            double sum = 0;
            for (int n = 0; n < 18; n++) {
                sum += term / (2 * n + 1);
                term *= -u2 / (n + 1);
            }
            return x * sum;
        }
        double zc = Math.min(z, 10);
        double t = 1 / (1 + 0.5 * zc);
        double g = 0;
        for (int i = ERFC_G.length - 1; i >= 0; i--) {
            g = g * t + ERFC_G[i];
        }
        double erfc = Math.exp(-zc * zc) * g;
        return x >= 0 ? 1 - erfc : erfc - 1;
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
                double sum = 0;
                for (int j = 0; j < n; j++) {
                    float e = (float) Math.exp(xs.getAtIndex(F, base + j) - max);
                    os.setAtIndex(F, base + j, e);
                    sum += e;
                }
                float inv = (float) (1 / sum);
                for (int j = 0; j < n; j++) {
                    os.setAtIndex(F, base + j, os.getAtIndex(F, base + j) * inv);
                }
            }
        });
    }
}
