package dev.marble.tensors.kernels;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The SIMD forms of {@link Elementwise}. Broadcasting runs row by row over the last dimension:
 * when b has the same shape the whole range is one flat row; otherwise b's offset for each row of
 * a is computed once from the strides, and b is either a contiguous row (b = [C], a per-batch
 * [B, 1, ..., C] time embedding, ...) or one value broadcast along the row.
 */
final class ElementwiseSimd {
    private static final VectorSpecies<Float> S = Simd.FLOAT;
    private static final int VL = S.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int GRAIN = 4096;

    private ElementwiseSimd() {
    }

    static void binary(Elementwise.Op op, Tensor a, Tensor b, long[] bstrides, Tensor out) {
        long[] shape = a.shape();
        int n = Math.toIntExact(a.numel());
        MemorySegment as = a.data();
        MemorySegment bs = b.data();
        MemorySegment os = out.data();
        boolean add = op == Elementwise.Op.ADD;
        if (b.numel() == n) {
            Parallel.forChunks(n, GRAIN, (chunk, i0, i1) -> rowRow(add, as, bs, os, i0, i0, i1 - i0));
            return;
        }
        int rank = shape.length;
        int c = rank == 0 ? 1 : (int) shape[rank - 1];
        long lastStride = rank == 0 ? 0 : bstrides[rank - 1];
        int rows = c == 0 ? 0 : n / c;
        Parallel.forChunks(rows, Math.max(1, GRAIN / Math.max(1, c)), (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long rem = r;
                long bo = 0;
                for (int d = rank - 2; d >= 0; d--) {
                    bo += (rem % shape[d]) * bstrides[d];
                    rem /= shape[d];
                }
                long ao = (long) r * c;
                if (lastStride == 1) {
                    rowRow(add, as, bs, os, ao, bo, c);
                } else {
                    rowScalar(add, as, bs.getAtIndex(F, bo), os, ao, c);
                }
            }
        });
    }

    /** out[ao + j] = a[ao + j] op b[bo + j] for j < n. */
    private static void rowRow(boolean add, MemorySegment as, MemorySegment bs, MemorySegment os, long ao, long bo,
            int n) {
        int end = n / VL * VL;
        if (add) {
            for (int j = 0; j < end; j += VL) {
                FloatVector.fromMemorySegment(S, as, (ao + j) * 4L, LE)
                        .add(FloatVector.fromMemorySegment(S, bs, (bo + j) * 4L, LE))
                        .intoMemorySegment(os, (ao + j) * 4L, LE);
            }
            for (int j = end; j < n; j++) {
                os.setAtIndex(F, ao + j, as.getAtIndex(F, ao + j) + bs.getAtIndex(F, bo + j));
            }
        } else {
            for (int j = 0; j < end; j += VL) {
                FloatVector.fromMemorySegment(S, as, (ao + j) * 4L, LE)
                        .mul(FloatVector.fromMemorySegment(S, bs, (bo + j) * 4L, LE))
                        .intoMemorySegment(os, (ao + j) * 4L, LE);
            }
            for (int j = end; j < n; j++) {
                os.setAtIndex(F, ao + j, as.getAtIndex(F, ao + j) * bs.getAtIndex(F, bo + j));
            }
        }
    }

    /** out[ao + j] = a[ao + j] op y for j < n. */
    private static void rowScalar(boolean add, MemorySegment as, float y, MemorySegment os, long ao, int n) {
        int end = n / VL * VL;
        for (int j = 0; j < end; j += VL) {
            FloatVector v = FloatVector.fromMemorySegment(S, as, (ao + j) * 4L, LE);
            (add ? v.add(y) : v.mul(y)).intoMemorySegment(os, (ao + j) * 4L, LE);
        }
        for (int j = end; j < n; j++) {
            float v = as.getAtIndex(F, ao + j);
            os.setAtIndex(F, ao + j, add ? v + y : v * y);
        }
    }

    /** out[o + j] = a[o + j]·s + c (a product and a sum, rounded separately like the scalar twin). */
    private static void affine(MemorySegment as, MemorySegment os, long o, int n, float s, float c) {
        int end = n / VL * VL;
        for (int j = 0; j < end; j += VL) {
            FloatVector.fromMemorySegment(S, as, (o + j) * 4L, LE).mul(s).add(c)
                    .intoMemorySegment(os, (o + j) * 4L, LE);
        }
        for (int j = end; j < n; j++) {
            os.setAtIndex(F, o + j, as.getAtIndex(F, o + j) * s + c);
        }
    }

    static void scale(Tensor a, float s, float c, Tensor out) {
        int n = Math.toIntExact(a.numel());
        MemorySegment as = a.data();
        MemorySegment os = out.data();
        Parallel.forChunks(n, GRAIN, (chunk, i0, i1) -> affine(as, os, i0, i1 - i0, s, c));
    }

    /** Each input row becomes output row 2y (every pixel written twice), then row 2y+1 copies it. */
    static void upsampleNearest2x(Tensor x, Tensor out) {
        int b = x.size(0);
        int h = x.size(1);
        int w = x.size(2);
        int c = x.size(3);
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        long rowBytes = 2L * w * c * 4L;
        Parallel.forChunks(b * h, (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long src = (long) r * w * c;
                long dst = (long) (2 * r) * 2 * w * c; // output row 2y of image n: (n·2h + 2y) = 2r
                for (int xx = 0; xx < w; xx++) {
                    duplicate(xs, src + (long) xx * c, os, dst + 2L * xx * c, c);
                }
                MemorySegment.copy(os, dst * 4L, os, dst * 4L + rowBytes, rowBytes);
            }
        });
    }

    /** out[o..o+c) = out[o+c..o+2c) = x[s..s+c). */
    private static void duplicate(MemorySegment xs, long s, MemorySegment os, long o, int c) {
        int end = c / VL * VL;
        for (int j = 0; j < end; j += VL) {
            FloatVector v = FloatVector.fromMemorySegment(S, xs, (s + j) * 4L, LE);
            v.intoMemorySegment(os, (o + j) * 4L, LE);
            v.intoMemorySegment(os, (o + c + j) * 4L, LE);
        }
        for (int j = end; j < c; j++) {
            float v = xs.getAtIndex(F, s + j);
            os.setAtIndex(F, o + j, v);
            os.setAtIndex(F, o + c + j, v);
        }
    }
}
