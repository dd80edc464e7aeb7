package dev.marble.tensors.kernels;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * The Vector API GEMM, blocked like BLIS. For each block of panels and K block, the panels are
 * decoded to F32 once into per-thread scratch; for each MC-row block of A (packed into MR-row
 * micro-panels, kept in L2), each decoded panel (kc × NR, kept in L1/L2) sweeps the whole A block
 * through the MR × NR outer-product micro-kernel, which writes its tile of C straight from registers.
 * <p>
 * The tile is 4 rows × 2 vectors: 8 accumulators, 2 panel vectors and the 4 broadcasts of one K
 * step fit AVX2's 16 registers. C2 issues all loads of a K step first, so larger tiles (6 × 2,
 * 5 × 2, 4 × 3) spill an accumulator to the stack and lose about half their speed (measured); the
 * 4 × 2 loop compiles to 8 FMAs, 2 loads and 4 broadcasts without bounds checks or spills. A is
 * read from a heap copy: broadcasting straight from the A segment made C2 unroll the loop and spill.
 */
final class GemmSimd {
    private static final VectorSpecies<Float> S = Simd.FLOAT;
    private static final int L = S.length();
    private static final int NR = PackedMatrix.NR;
    /** Rows of the micro-tile. */
    static final int MR = 4;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /**
     * Cache blocking. {@code kc}: the largest K block (K is cut into equal blocks of at most kc,
     * rounded up to 32, so blocks start at multiples of 32, the quantized block size); the decoded
     * panel of one K block (kc × NR floats) stays in L1. {@code aBlock}: floats of the packed A block
     * (MC × kc), which stays in L2 while the panels sweep it. {@code bBlock}: most floats of decoded
     * panels per thread; A is packed again for each such block of columns.
     */
    record Blocking(int kc, int aBlock, int bBlock) {
        /**
         * Measured on Zen 3 (32 KB L1, 512 KB L2): K ≤ 512 in one block, so C is written once (C
         * tile updates were a quarter of the time with kc = 160); the A block is 192 KB.
         */
        static final Blocking DEFAULT = new Blocking(512, 48 * 1024, 1024 * 1024);
    }

    /** Work units per thread, dealt out on demand: a thread slowed by other load simply takes fewer. */
    private static final int UNITS_PER_THREAD = 4;

    /**
     * Per-thread scratch, grown on demand and then reused: decoded panels, the packed A block, one
     * tile. It remembers which block of panels it holds, so the row units of one call decode the
     * panels once per thread when K and N fit one block.
     */
    private static final class Scratch {
        float[] b = new float[0];
        float[] a = new float[0];
        final float[] acc = new float[MR * NR];
        /** The call (its unit counter) and the panel block and K block whose decoded panels b holds. */
        Object call;
        int pb;
        int pe;
        int k0;

        static float[] grow(float[] buf, int floats) {
            return buf.length >= floats ? buf : new float[floats];
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private GemmSimd() {
    }

    static void matmul(Tensor a, PackedMatrix b, Tensor bias, Tensor c, int m) {
        matmul(a, b, bias, c, m, Blocking.DEFAULT);
    }

    /**
     * With explicit blocking: tests use small blocks to reach every block edge on small shapes. The
     * work is cut into units of MR-row tiles when there are more tiles than panels (each unit then
     * decodes the panels it needs), else into units of panels (each then packs A).
     */
    static void matmul(Tensor a, PackedMatrix b, Tensor bias, Tensor c, int m, Blocking blocking) {
        if (m == 0) {
            return;
        }
        int panels = b.panels();
        MemorySegment as = a.data();
        MemorySegment cs = c.data();
        MemorySegment bs = bias == null ? null : bias.data();
        int tiles = (m + MR - 1) / MR;
        boolean byRows = tiles >= panels;
        int total = byRows ? tiles : panels;
        int per = (total + Parallel.threads() * UNITS_PER_THREAD - 1) / (Parallel.threads() * UNITS_PER_THREAD);
        int units = (total + per - 1) / per;
        AtomicInteger next = new AtomicInteger();
        Parallel.forChunks(Math.min(Parallel.threads(), units), (chunk, from, to) -> {
            for (int u = next.getAndIncrement(); u < units; u = next.getAndIncrement()) {
                int u0 = u * per;
                int u1 = Math.min(total, u0 + per);
                if (byRows) {
                    run(as, b, bs, cs, u0 * MR, Math.min(m, u1 * MR), 0, panels, blocking, next);
                } else {
                    run(as, b, bs, cs, 0, m, u0, u1, blocking, next);
                }
            }
        });
    }

    /** C rows [m0, m1) × panels [p0, p1). */
    private static void run(MemorySegment a, PackedMatrix b, MemorySegment bias, MemorySegment c,
                            int m0, int m1, int p0, int p1, Blocking blocking, Object call) {
        int k = b.k();
        int n = b.n();
        int kBlocks = (k + blocking.kc() - 1) / blocking.kc();
        int kcMax = Math.min(k, (((k + kBlocks - 1) / kBlocks) + 31) & ~31);
        int mc = Math.min(m1 - m0 + MR - 1, Math.max(MR, blocking.aBlock() / kcMax)) / MR * MR;
        int panelsPerBlock = Math.min(p1 - p0, Math.max(1, blocking.bBlock() / (kcMax * NR)));
        Scratch s = SCRATCH.get();
        if (s.b.length < panelsPerBlock * kcMax * NR) {
            s.b = new float[panelsPerBlock * kcMax * NR];
            s.call = null;
        }
        float[] bb = s.b;
        float[] ab = s.a = Scratch.grow(s.a, mc * kcMax);
        for (int pb = p0; pb < p1; pb += panelsPerBlock) {
            int pe = Math.min(p1, pb + panelsPerBlock);
            for (int k0 = 0; k0 < k; k0 += kcMax) {
                int kc = Math.min(kcMax, k - k0);
                boolean first = k0 == 0;
                MemorySegment lastBias = k0 + kc == k ? bias : null;
                if (s.call != call || s.pb != pb || s.pe != pe || s.k0 != k0) {
                    for (int p = pb; p < pe; p++) {
                        b.decode(p, k0, kc, bb, (p - pb) * kc * NR);
                    }
                    s.call = call;
                    s.pb = pb;
                    s.pe = pe;
                    s.k0 = k0;
                }
                for (int ib = m0; ib < m1; ib += mc) {
                    int ie = Math.min(m1, ib + mc);
                    packA(a, k, ib, ie, k0, kc, ab);
                    for (int p = pb; p < pe; p++) {
                        int bo = (p - pb) * kc * NR;
                        for (int i0 = ib; i0 < ie; i0 += MR) {
                            kernel(ab, (i0 - ib) * kc, bb, bo, kc, s.acc, c, n, i0, Math.min(MR, ie - i0), p * NR,
                                    first, lastBias);
                        }
                    }
                }
            }
        }
    }

    /**
     * A[ib .. ie, k0 .. k0+kc) → MR-row micro-panels, row after row: dst[tile·MR·kc + r·kc + kk]. A
     * row-major panel is a plain copy per row; the kernel's four broadcast streams run side by side.
     * Rows of the last micro-panel past ie are zero.
     */
    private static void packA(MemorySegment a, int k, int ib, int ie, int k0, int kc, float[] dst) {
        int padded = (ie - ib + MR - 1) / MR * MR;
        for (int i = ib; i < ie; i++) {
            MemorySegment.copy(a, F, ((long) i * k + k0) * 4, dst, (i - ib) * kc, kc);
        }
        Arrays.fill(dst, (ie - ib) * kc, padded * kc, 0f);
    }

    /**
     * The micro-kernel: C[i0 .. i0+MR, j0 .. j0+NR) (+)= Σ_kk a[ao + r·kc + kk] · b[bo + kk·NR + j]
     * (+ bias). A whole tile is written from registers; an edge tile goes through {@code acc}.
     */
    private static void kernel(float[] a, int ao, float[] b, int bo, int kc, float[] acc,
                               MemorySegment c, int n, int i0, int rows, int j0, boolean first, MemorySegment bias) {
        FloatVector c00 = FloatVector.zero(S), c01 = FloatVector.zero(S);
        FloatVector c10 = FloatVector.zero(S), c11 = FloatVector.zero(S);
        FloatVector c20 = FloatVector.zero(S), c21 = FloatVector.zero(S);
        FloatVector c30 = FloatVector.zero(S), c31 = FloatVector.zero(S);
        int a1 = ao + kc;
        int a2 = a1 + kc;
        int a3 = a2 + kc;
        for (int kk = 0; kk < kc; kk++, bo += NR) {
            FloatVector b0 = FloatVector.fromArray(S, b, bo);
            FloatVector b1 = FloatVector.fromArray(S, b, bo + L);
            FloatVector x = FloatVector.broadcast(S, a[ao + kk]);
            c00 = x.fma(b0, c00);
            c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(S, a[a1 + kk]);
            c10 = x.fma(b0, c10);
            c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(S, a[a2 + kk]);
            c20 = x.fma(b0, c20);
            c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(S, a[a3 + kk]);
            c30 = x.fma(b0, c30);
            c31 = x.fma(b1, c31);
        }
        if (rows < MR || j0 + NR > n) {
            c00.intoArray(acc, 0);
            c01.intoArray(acc, L);
            c10.intoArray(acc, NR);
            c11.intoArray(acc, NR + L);
            c20.intoArray(acc, 2 * NR);
            c21.intoArray(acc, 2 * NR + L);
            c30.intoArray(acc, 3 * NR);
            c31.intoArray(acc, 3 * NR + L);
            update(acc, c, n, i0, rows, j0, first, bias);
            return;
        }
        long ld = (long) n * 4;
        long o0 = ((long) i0 * n + j0) * 4;
        long o1 = o0 + ld;
        long o2 = o1 + ld;
        long o3 = o2 + ld;
        long v = 4L * L;
        if (bias != null) {
            FloatVector bias0 = FloatVector.fromMemorySegment(S, bias, (long) j0 * 4, LE);
            FloatVector bias1 = FloatVector.fromMemorySegment(S, bias, (long) j0 * 4 + v, LE);
            c00 = c00.add(bias0);
            c01 = c01.add(bias1);
            c10 = c10.add(bias0);
            c11 = c11.add(bias1);
            c20 = c20.add(bias0);
            c21 = c21.add(bias1);
            c30 = c30.add(bias0);
            c31 = c31.add(bias1);
        }
        if (!first) {
            c00 = c00.add(FloatVector.fromMemorySegment(S, c, o0, LE));
            c01 = c01.add(FloatVector.fromMemorySegment(S, c, o0 + v, LE));
            c10 = c10.add(FloatVector.fromMemorySegment(S, c, o1, LE));
            c11 = c11.add(FloatVector.fromMemorySegment(S, c, o1 + v, LE));
            c20 = c20.add(FloatVector.fromMemorySegment(S, c, o2, LE));
            c21 = c21.add(FloatVector.fromMemorySegment(S, c, o2 + v, LE));
            c30 = c30.add(FloatVector.fromMemorySegment(S, c, o3, LE));
            c31 = c31.add(FloatVector.fromMemorySegment(S, c, o3 + v, LE));
        }
        c00.intoMemorySegment(c, o0, LE);
        c01.intoMemorySegment(c, o0 + v, LE);
        c10.intoMemorySegment(c, o1, LE);
        c11.intoMemorySegment(c, o1 + v, LE);
        c20.intoMemorySegment(c, o2, LE);
        c21.intoMemorySegment(c, o2 + v, LE);
        c30.intoMemorySegment(c, o3, LE);
        c31.intoMemorySegment(c, o3 + v, LE);
    }

    /**
     * C[i0 + r, j0 ..] = (first ? 0 : C) + acc[r] (+ bias on the last K block) for the first
     * {@code rows} rows; a ragged last panel is written through lane masks.
     */
    private static void update(float[] acc, MemorySegment c, int n, int i0, int rows, int j0, boolean first,
                               MemorySegment bias) {
        long rowBytes = (long) n * 4;
        long off = ((long) i0 * n + j0) * 4;
        if (j0 + NR <= n) {
            for (int v = 0; v < NR; v += L) {
                FloatVector bv = bias == null ? FloatVector.zero(S)
                        : FloatVector.fromMemorySegment(S, bias, (long) (j0 + v) * 4, LE);
                for (int r = 0; r < rows; r++) {
                    long o = off + r * rowBytes + 4L * v;
                    FloatVector x = FloatVector.fromArray(S, acc, r * NR + v).add(bv);
                    if (!first) {
                        x = x.add(FloatVector.fromMemorySegment(S, c, o, LE));
                    }
                    x.intoMemorySegment(c, o, LE);
                }
            }
        } else {
            for (int v = 0; v < NR; v += L) {
                VectorMask<Float> m = S.indexInRange(j0 + v, n);
                FloatVector bv = bias == null ? FloatVector.zero(S)
                        : FloatVector.fromMemorySegment(S, bias, (long) (j0 + v) * 4, LE, m);
                for (int r = 0; r < rows; r++) {
                    long o = off + r * rowBytes + 4L * v;
                    FloatVector x = FloatVector.fromArray(S, acc, r * NR + v).add(bv);
                    if (!first) {
                        x = x.add(FloatVector.fromMemorySegment(S, c, o, LE, m));
                    }
                    x.intoMemorySegment(c, o, LE, m);
                }
            }
        }
    }
}
