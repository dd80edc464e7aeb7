package dev.marble.tensors.kernels;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The SIMD forms of {@link Activation}. Each loop inlines its vector function exactly once (one
 * method per activation, scalar tails through the scalar twin): a second inlined copy of a large
 * vector function can push C2 past its inlining budget, and a vector function that is not inlined
 * boxes every vector.
 */
final class ActivationSimd {
    private static final VectorSpecies<Float> S = Simd.FLOAT;
    private static final int VL = S.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int GRAIN = 4096;
    private static final float QUICK = 1.702f;

    private ActivationSimd() {
    }

    static void apply(Activation.Kind kind, Tensor x, Tensor out) {
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        int n = Math.toIntExact(x.numel());
        Parallel.forChunks(n, GRAIN, (chunk, i0, i1) -> {
            int end = i0 + (i1 - i0) / VL * VL;
            switch (kind) {
                case SILU -> silu(xs, os, i0, end);
                case GELU -> gelu(xs, os, i0, end);
                case GELU_TANH -> geluTanh(xs, os, i0, end);
                case QUICK_GELU -> quickGelu(xs, os, i0, end);
                case IDENTITY -> throw new IllegalStateException("identity is a copy");
            }
            for (int i = end; i < i1; i++) {
                os.setAtIndex(F, i, ActivationScalar.apply(kind, xs.getAtIndex(F, i)));
            }
        });
    }

    private static FloatVector load(MemorySegment s, int i) {
        return FloatVector.fromMemorySegment(S, s, 4L * i, LE);
    }

    private static void silu(MemorySegment xs, MemorySegment os, int from, int to) {
        for (int i = from; i < to; i += VL) {
            FloatVector v = load(xs, i);
            ActivationMath.xSigmoid(v, v).intoMemorySegment(os, 4L * i, LE);
        }
    }

    private static void quickGelu(MemorySegment xs, MemorySegment os, int from, int to) {
        for (int i = from; i < to; i += VL) {
            FloatVector v = load(xs, i);
            ActivationMath.xSigmoid(v, v.mul(QUICK)).intoMemorySegment(os, 4L * i, LE);
        }
    }

    private static void gelu(MemorySegment xs, MemorySegment os, int from, int to) {
        for (int i = from; i < to; i += VL) {
            ActivationMath.gelu(load(xs, i)).intoMemorySegment(os, 4L * i, LE);
        }
    }

    private static void geluTanh(MemorySegment xs, MemorySegment os, int from, int to) {
        for (int i = from; i < to; i += VL) {
            ActivationMath.geluTanh(load(xs, i)).intoMemorySegment(os, 4L * i, LE);
        }
    }

    /** out[r, j] = x[r, j] · gelu(x[r, n + j]). */
    static void geglu(Tensor x, Tensor out, int m, int n) {
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        int end = n / VL * VL;
        Parallel.forChunks(m, Math.max(1, GRAIN / Math.max(1, n)), (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long in = (long) r * 2 * n;
                long o = (long) r * n;
                gegluRow(xs, os, in, o, n, end);
                for (int j = end; j < n; j++) {
                    os.setAtIndex(F, o + j, xs.getAtIndex(F, in + j)
                            * ActivationScalar.gelu(xs.getAtIndex(F, in + n + j)));
                }
            }
        });
    }

    private static void gegluRow(MemorySegment xs, MemorySegment os, long in, long o, int n, int end) {
        for (int j = 0; j < end; j += VL) {
            FloatVector h = FloatVector.fromMemorySegment(S, xs, (in + j) * 4L, LE);
            FloatVector g = FloatVector.fromMemorySegment(S, xs, (in + n + j) * 4L, LE);
            h.mul(ActivationMath.gelu(g)).intoMemorySegment(os, (o + j) * 4L, LE);
        }
    }

    /** Row softmax: vector max, one pass of e^(x - max) with its sum, one pass of scaling. */
    static void softmax(Tensor x, Tensor out, int m, int n) {
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        int end = n / VL * VL;
        Parallel.forChunks(m, Math.max(1, GRAIN / Math.max(1, n)), (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long base = (long) r * n;
                float max = rowMax(xs, base, end);
                for (int j = end; j < n; j++) {
                    max = Math.max(max, xs.getAtIndex(F, base + j));
                }
                float sum = expRow(xs, os, base, end, max);
                for (int j = end; j < n; j++) {
                    float e = (float) Math.exp(xs.getAtIndex(F, base + j) - max);
                    os.setAtIndex(F, base + j, e);
                    sum += e;
                }
                scaleRow(os, base, n, end, 1f / sum);
            }
        });
    }

    private static float rowMax(MemorySegment xs, long base, int end) {
        FloatVector mx = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
        for (int j = 0; j < end; j += VL) {
            mx = mx.max(FloatVector.fromMemorySegment(S, xs, (base + j) * 4L, LE));
        }
        return mx.reduceLanes(VectorOperators.MAX);
    }

    private static float expRow(MemorySegment xs, MemorySegment os, long base, int end, float max) {
        FloatVector sum = FloatVector.zero(S);
        for (int j = 0; j < end; j += VL) {
            FloatVector e = ActivationMath.expNonPositive(
                    FloatVector.fromMemorySegment(S, xs, (base + j) * 4L, LE).sub(max));
            e.intoMemorySegment(os, (base + j) * 4L, LE);
            sum = sum.add(e);
        }
        return Lanes.sum(sum);
    }

    private static void scaleRow(MemorySegment os, long base, int n, int end, float inv) {
        for (int j = 0; j < end; j += VL) {
            FloatVector.fromMemorySegment(S, os, (base + j) * 4L, LE).mul(inv)
                    .intoMemorySegment(os, (base + j) * 4L, LE);
        }
        for (int j = end; j < n; j++) {
            os.setAtIndex(F, base + j, os.getAtIndex(F, base + j) * inv);
        }
    }
}
