package dev.marble.tensors.kernels;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The scalar twins of {@link Elementwise}. */
final class ElementwiseScalar {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int GRAIN = 4096;

    private ElementwiseScalar() {
    }

    static void binary(Elementwise.Op op, Tensor a, Tensor b, long[] bstrides, Tensor out) {
        long[] shape = a.shape();
        int n = Math.toIntExact(a.numel());
        MemorySegment as = a.data();
        MemorySegment bs = b.data();
        MemorySegment os = out.data();
        Parallel.forChunks(n, GRAIN, (chunk, i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                long rem = i;
                long bi = 0;
                for (int d = shape.length - 1; d >= 0; d--) {
                    bi += (rem % shape[d]) * bstrides[d];
                    rem /= shape[d];
                }
                float x = as.getAtIndex(F, i);
                float y = bs.getAtIndex(F, bi);
                os.setAtIndex(F, i, op == Elementwise.Op.ADD ? x + y : x * y);
            }
        });
    }

    static void scale(Tensor a, float s, float c, Tensor out) {
        int n = Math.toIntExact(a.numel());
        MemorySegment as = a.data();
        MemorySegment os = out.data();
        Parallel.forChunks(n, GRAIN, (chunk, i0, i1) -> {
            for (int i = i0; i < i1; i++) {
                os.setAtIndex(F, i, as.getAtIndex(F, i) * s + c);
            }
        });
    }

    static void upsampleNearest2x(Tensor x, Tensor out) {
        int b = x.size(0);
        int h = x.size(1);
        int w = x.size(2);
        int c = x.size(3);
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        Parallel.forChunks(b * h, (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int n = r / h;
                int y = r % h;
                for (int xx = 0; xx < w; xx++) {
                    long src = (((long) n * h + y) * w + xx) * c * 4L;
                    for (int dy = 0; dy < 2; dy++) {
                        for (int dx = 0; dx < 2; dx++) {
                            long dst = (((long) n * 2 * h + 2 * y + dy) * 2 * w + 2 * xx + dx) * c * 4L;
                            MemorySegment.copy(xs, src, os, dst, c * 4L);
                        }
                    }
                }
            }
        });
    }

    static void concatChannels(Tensor a, Tensor b, Tensor out) {
        int c1 = a.size(-1);
        int c2 = b.size(-1);
        int rows = Math.toIntExact(a.numel() / c1);
        MemorySegment as = a.data();
        MemorySegment bs = b.data();
        MemorySegment os = out.data();
        Parallel.forChunks(rows, GRAIN / Math.max(1, c1 + c2) + 1, (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long o = (long) r * (c1 + c2) * 4L;
                MemorySegment.copy(as, (long) r * c1 * 4L, os, o, c1 * 4L);
                MemorySegment.copy(bs, (long) r * c2 * 4L, os, o + c1 * 4L, c2 * 4L);
            }
        });
    }
}
