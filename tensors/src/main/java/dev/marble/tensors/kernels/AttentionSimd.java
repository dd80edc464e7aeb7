package dev.marble.tensors.kernels;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The SIMD form of {@link Attention}: flash attention with vectors across QUERIES. For one head and
 * a tile of TQ = 2 vectors of queries it keeps Qᵀ·scale [D][TQ], the output accumulator Oᵀ [D][TQ]
 * and a running max m and sum l per query lane, and walks the keys in tiles of TK:
 * <pre>
 *   Sᵀ[j][i] = Σ_d K[j][d]·Qᵀ[d][i]          outer products: broadcast K[j][d], vectors of Qᵀ
 *   m' = max(m, max_j Sᵀ[j]);  Pᵀ = exp(Sᵀ - m');  α = exp(m - m')
 *   Oᵀ[d] = α·Oᵀ[d] + Σ_j V[j][d]·Pᵀ[j];  l = α·l + Σ_j Pᵀ[j];  m = m'
 *   out = Oᵀ / l, transposed back into the token rows
 * </pre>
 * The row max and row sum of the softmax are lane-wise (no horizontal reductions), K is used in its
 * natural [key][d] layout, and D needs no vector alignment: it is the broadcast dimension. Each
 * worker packs K and V of the heads it is working on into contiguous per-thread scratch (keys padded
 * to a multiple of the score kernel's KR rows); padded query lanes compute on zeros and are not
 * stored. The full Lq×Lk score matrix never exists; a causal mask skips the key tiles above the
 * diagonal and masks the diagonal ones.
 */
final class AttentionSimd {
    private static final VectorSpecies<Float> S = Simd.FLOAT;
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int VL = S.length();
    /** Queries per tile: two vectors. */
    private static final int TQ = 2 * VL;
    /** Keys per score micro-kernel call. */
    private static final int KR = 6;
    /** Keys per flash tile (a multiple of KR). */
    private static final int TK = 192;
    /** Head dimensions per P·V micro-kernel call. */
    private static final int DR = 4;
    /** From this many (padded) keys on, work is ordered by head (see {@link #forward}). */
    private static final int PER_HEAD_KEYS = 384;

    /** Per-worker buffers, grown on demand and reused across calls. */
    private static final class Scratch {
        /** K of the packed heads [h0, h1) of one batch entry: head h at (h - h0)·kpad·d, see {@link #packHeads}. */
        float[] k = new float[0];
        /** V likewise. */
        float[] v = new float[0];
        float[] qt = new float[0];
        float[] ot = new float[0];
        final float[] st = new float[(TK + 1) * TQ];
        final float[] m = new float[TQ];
        final float[] l = new float[TQ];
        final float[] mnew = new float[TQ];
        /** One key row of all heads. */
        float[] row = new float[0];
        /** The tile's query rows and output rows, [TQ][c] each: contiguous in the tensors. */
        float[] qblock = new float[0];
        float[] oblock = new float[0];
        /** rowIdx[i] = i·c: gathers one column of the query block. */
        final int[] rowIdx = new int[TQ];
        int rowIdxC = -1;

        void ensure(int kpad, int d, int c, int packedHeads) {
            if (k.length < kpad * d * packedHeads) {
                k = new float[kpad * d * packedHeads];
                v = new float[kpad * d * packedHeads];
            }
            // Oᵀ is read back with VL-lane gathers, masked on the last group of dimensions; the masked
            // gather still range-checks every lane, so Oᵀ spans whole vectors of dimensions.
            int dWhole = (d + VL - 1) / VL * VL;
            if (qt.length < d * TQ || ot.length < dWhole * TQ) {
                qt = new float[d * TQ];
                ot = new float[dWhole * TQ];
            }
            if (qblock.length < c * TQ) {
                qblock = new float[c * TQ];
                oblock = new float[c * TQ];
                row = new float[c];
            }
            if (rowIdxC != c) {
                for (int i = 0; i < TQ; i++) {
                    rowIdx[i] = i * c;
                }
                rowIdxC = c;
            }
        }
    }

    /** COL_IDX[l] = l·TQ: gathers VL consecutive head dimensions of one query from Oᵀ. */
    private static final int[] COL_IDX = new int[VL];

    static {
        for (int l = 0; l < VL; l++) {
            COL_IDX[l] = l * TQ;
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private AttentionSimd() {
    }

    /**
     * With few keys (cross-attention), work items are (batch, query tile): a worker packs K and V of
     * all heads when the batch entry changes, copies the tile's query rows in and its output rows
     * out with one bulk copy each (they are contiguous across heads) and runs every head on them.
     * With many keys (self-attention) the items are (batch, head, query tile) so that one head's
     * packed K and V stay hot across consecutive tiles; the tile's output then goes out row by row.
     */
    static void forward(Tensor q, Tensor k, Tensor v, int heads, float scale, boolean causal, Tensor out) {
        int b = q.size(0);
        int lq = q.size(1);
        int lk = k.size(1);
        int c = q.size(2);
        int d = c / heads;
        int kpad = (lk + KR - 1) / KR * KR;
        int qtiles = (lq + TQ - 1) / TQ;
        boolean perHead = kpad >= PER_HEAD_KEYS;
        MemorySegment qs = q.data();
        MemorySegment ks = k.data();
        MemorySegment vs = v.data();
        MemorySegment os = out.data();
        Parallel.forChunks(b * (perHead ? heads : 1) * qtiles, (chunk, t0, t1) -> {
            Scratch s = SCRATCH.get();
            s.ensure(kpad, d, c, perHead ? 1 : heads);
            int packed = -1;
            for (int t = t0; t < t1; t++) {
                int group = t / qtiles; // batch entry, or (batch, head) pair
                int bi = perHead ? group / heads : group;
                int h0 = perHead ? group % heads : 0;
                int h1 = perHead ? h0 + 1 : heads;
                if (group != packed) {
                    packHeads(ks, vs, bi, h0, h1, lk, kpad, c, d, s);
                    packed = group;
                }
                int q0 = (t % qtiles) * TQ;
                int nq = Math.min(TQ, lq - q0);
                long rows = ((long) bi * lq + q0) * c * 4L;
                MemorySegment.copy(qs, F, rows, s.qblock, 0, nq * c);
                Arrays.fill(s.qblock, nq * c, TQ * c, 0f);
                int kend = causal ? Math.min(lk, q0 + nq) : lk;
                for (int h = h0; h < h1; h++) {
                    tile(s, h, (h - h0) * kpad * d, c, d, kpad, q0, nq, kend, causal, scale);
                }
                if (perHead) {
                    for (int i = 0; i < nq; i++) {
                        int o = i * c + h0 * d;
                        MemorySegment.copy(s.oblock, o, os, F, rows + o * 4L, d);
                    }
                } else {
                    MemorySegment.copy(s.oblock, 0, os, F, rows, nq * c);
                }
            }
        });
    }

    /**
     * Packs K and V of heads [h0, h1) of batch entry bi: head h's K at (h - h0)·kpad·d as [kpad][d], its V
     * at the same offset grouped by DR dimensions: group g holds [kpad][DR] (V[j][DR·g + r] at
     * g·kpad·DR + j·DR + r) and the d mod DR remaining dimensions follow as [rest][kpad]. The P·V
     * kernel then reads V with a constant stride, which lets C2 drop the bounds checks. Padded key
     * rows are zero.
     */
    private static void packHeads(MemorySegment ks, MemorySegment vs, int bi, int h0, int h1, int lk, int kpad,
            int c, int d, Scratch s) {
        float[] row = s.row;
        float[] kp = s.k;
        float[] vp = s.v;
        int groups = d / DR;
        int width = (h1 - h0) * d;
        for (int j = 0; j < kpad; j++) {
            if (j < lk) {
                long off = (((long) bi * lk + j) * c + (long) h0 * d) * 4L;
                loadRow(ks, off, row, 0, width);
                for (int h = 0; h < h1 - h0; h++) {
                    System.arraycopy(row, h * d, kp, (h * kpad + j) * d, d);
                }
                loadRow(vs, off, row, 0, width);
            } else {
                Arrays.fill(row, 0, width, 0f);
                for (int h = 0; h < h1 - h0; h++) {
                    Arrays.fill(kp, (h * kpad + j) * d, (h * kpad + j + 1) * d, 0f);
                }
            }
            for (int h = 0; h < h1 - h0; h++) {
                int base = h * kpad * d;
                int hd = h * d;
                for (int g = 0; g < groups; g++) {
                    int dst = base + (g * kpad + j) * DR;
                    for (int r = 0; r < DR; r++) {
                        vp[dst + r] = row[hd + g * DR + r];
                    }
                }
                int restBase = base + groups * kpad * DR;
                for (int e = groups * DR; e < d; e++) {
                    vp[restBase + (e - groups * DR) * kpad + j] = row[hd + e];
                }
            }
        }
    }

    /**
     * n floats at byte offset off of seg into dst[dstOff..]: whole vectors and a masked tail (a bulk
     * MemorySegment.copy costs more than the data for rows this short).
     */
    private static void loadRow(MemorySegment seg, long off, float[] dst, int dstOff, int n) {
        int e = 0;
        for (; e <= n - VL; e += VL) {
            FloatVector.fromMemorySegment(S, seg, off + e * 4L, ByteOrder.LITTLE_ENDIAN).intoArray(dst, dstOff + e);
        }
        if (e < n) {
            VectorMask<Float> tail = S.indexInRange(e, n);
            FloatVector.fromMemorySegment(S, seg, off + e * 4L, ByteOrder.LITTLE_ENDIAN, tail)
                    .intoArray(dst, dstOff + e, tail);
        }
    }

    /**
     * Head h (packed at hb) of the query tile [q0, q0 + nq) in s.qblock against keys [0, kend), into
     * s.oblock.
     */
    private static void tile(Scratch s, int h, int hb, int c, int d, int kpad, int q0, int nq, int kend,
            boolean causal, float scale) {
        float[] qt = s.qt;
        float[] ot = s.ot;
        float[] st = s.st;
        float[] kp = s.k;
        float[] vp = s.v;
        // 1. Qᵀ·scale, gathered from the block's columns (its padded rows are zero).
        float[] qblock = s.qblock;
        int[] rowIdx = s.rowIdx;
        FloatVector sc = FloatVector.broadcast(S, scale);
        for (int e = 0; e < d; e++) {
            FloatVector.fromArray(S, qblock, h * d + e, rowIdx, 0).mul(sc).intoArray(qt, e * TQ);
            FloatVector.fromArray(S, qblock, h * d + e, rowIdx, VL).mul(sc).intoArray(qt, e * TQ + VL);
        }
        Arrays.fill(ot, 0, d * TQ, 0f);
        Arrays.fill(s.m, Float.NEGATIVE_INFINITY);
        Arrays.fill(s.l, 0f);
        // 2. Key tiles.
        for (int k0 = 0; k0 < kend; k0 += TK) {
            int kn = Math.min(TK, kend - k0);
            int knPad = (kn + KR - 1) / KR * KR;
            for (int j0 = 0; j0 < knPad; j0 += KR) {
                scores(kp, hb + (k0 + j0) * d, d, qt, st, j0 * TQ);
            }
            if (causal && k0 + kn > q0 + 1) {
                // Query q0+i sees keys j ≤ q0+i: mask lanes i < j - q0.
                for (int j = Math.max(k0, q0 + 1); j < k0 + kn; j++) {
                    Arrays.fill(st, (j - k0) * TQ, (j - k0) * TQ + Math.min(TQ, j - q0), Float.NEGATIVE_INFINITY);
                }
            }
            softmaxStep(st, kn, s.m, s.l, s.mnew);
            int groups = d / DR;
            for (int g = 0; g < groups; g++) {
                pv4(st, kn, vp, hb + (g * kpad + k0) * DR, ot, g * DR * TQ);
            }
            for (int e = groups * DR; e < d; e++) {
                pv1(st, kn, vp, hb + groups * kpad * DR + (e - groups * DR) * kpad + k0, ot, e * TQ);
            }
        }
        // 3. Normalize and transpose back: gather each query's row from the columns of Oᵀ.
        float[] oblock = s.oblock;
        for (int i = 0; i < nq; i++) {
            FloatVector inv = FloatVector.broadcast(S, 1f / s.l[i]);
            int o = i * c + h * d;
            int e = 0;
            for (; e <= d - VL; e += VL) {
                FloatVector.fromArray(S, ot, e * TQ + i, COL_IDX, 0).mul(inv).intoArray(oblock, o + e);
            }
            if (e < d) {
                VectorMask<Float> tail = S.indexInRange(e, d);
                FloatVector.fromArray(S, ot, e * TQ + i, COL_IDX, 0, tail).mul(inv).intoArray(oblock, o + e, tail);
            }
        }
    }

    /** Sᵀ rows [sb/TQ, +KR) = KR packed key rows starting at kb times Qᵀ. */
    private static void scores(float[] k, int kb, int d, float[] qt, float[] st, int sb) {
        FloatVector a00 = FloatVector.zero(S);
        FloatVector a01 = FloatVector.zero(S);
        FloatVector a10 = FloatVector.zero(S);
        FloatVector a11 = FloatVector.zero(S);
        FloatVector a20 = FloatVector.zero(S);
        FloatVector a21 = FloatVector.zero(S);
        FloatVector a30 = FloatVector.zero(S);
        FloatVector a31 = FloatVector.zero(S);
        FloatVector a40 = FloatVector.zero(S);
        FloatVector a41 = FloatVector.zero(S);
        FloatVector a50 = FloatVector.zero(S);
        FloatVector a51 = FloatVector.zero(S);
        int k1 = kb + d;
        int k2 = k1 + d;
        int k3 = k2 + d;
        int k4 = k3 + d;
        int k5 = k4 + d;
        for (int e = 0; e < d; e++) {
            FloatVector q0 = FloatVector.fromArray(S, qt, e * TQ);
            FloatVector q1 = FloatVector.fromArray(S, qt, e * TQ + VL);
            FloatVector b = FloatVector.broadcast(S, k[kb + e]);
            a00 = q0.fma(b, a00);
            a01 = q1.fma(b, a01);
            b = FloatVector.broadcast(S, k[k1 + e]);
            a10 = q0.fma(b, a10);
            a11 = q1.fma(b, a11);
            b = FloatVector.broadcast(S, k[k2 + e]);
            a20 = q0.fma(b, a20);
            a21 = q1.fma(b, a21);
            b = FloatVector.broadcast(S, k[k3 + e]);
            a30 = q0.fma(b, a30);
            a31 = q1.fma(b, a31);
            b = FloatVector.broadcast(S, k[k4 + e]);
            a40 = q0.fma(b, a40);
            a41 = q1.fma(b, a41);
            b = FloatVector.broadcast(S, k[k5 + e]);
            a50 = q0.fma(b, a50);
            a51 = q1.fma(b, a51);
        }
        a00.intoArray(st, sb);
        a01.intoArray(st, sb + VL);
        a10.intoArray(st, sb + TQ);
        a11.intoArray(st, sb + TQ + VL);
        a20.intoArray(st, sb + 2 * TQ);
        a21.intoArray(st, sb + 2 * TQ + VL);
        a30.intoArray(st, sb + 3 * TQ);
        a31.intoArray(st, sb + 3 * TQ + VL);
        a40.intoArray(st, sb + 4 * TQ);
        a41.intoArray(st, sb + 4 * TQ + VL);
        a50.intoArray(st, sb + 5 * TQ);
        a51.intoArray(st, sb + 5 * TQ + VL);
    }

    /**
     * Online softmax over the kn score rows of st: updates m and l, turns the scores into
     * e^(s - m') in place and leaves the rescale factor α = e^(m - m') of the old accumulator in row
     * kn. The old max is appended as that extra row so that ONE loop computes every exponential:
     * C2 inlines each vector exp into a large graph, and a second copy in the same compilation can
     * exceed its inlining node budget (a vector helper that is not inlined boxes every vector).
     */
    private static void softmaxStep(float[] st, int kn, float[] m, float[] l, float[] mnew) {
        FloatVector x0 = FloatVector.fromArray(S, m, 0);
        FloatVector x1 = FloatVector.fromArray(S, m, VL);
        for (int j = 0; j < kn; j++) {
            FloatVector s0 = FloatVector.fromArray(S, st, j * TQ);
            FloatVector s1 = FloatVector.fromArray(S, st, j * TQ + VL);
            // Compare and blend instead of max(): Java's NaN/-0 rules make max() several instructions.
            x0 = x0.blend(s0, s0.compare(VectorOperators.GT, x0));
            x1 = x1.blend(s1, s1.compare(VectorOperators.GT, x1));
        }
        x0.intoArray(mnew, 0);
        x1.intoArray(mnew, VL);
        System.arraycopy(m, 0, st, kn * TQ, TQ);
        // Vector v of the flat rows covers lanes (v mod 2)·VL.. of row v/2.
        for (int v = 0, nv = 2 * (kn + 1); v < nv; v++) {
            FloatVector x = FloatVector.fromArray(S, mnew, (v & 1) * VL);
            ActivationMath.expNonPositive(FloatVector.fromArray(S, st, v * VL).sub(x)).intoArray(st, v * VL);
        }
        FloatVector s0 = FloatVector.zero(S);
        FloatVector s1 = FloatVector.zero(S);
        for (int j = 0; j < kn; j++) {
            s0 = s0.add(FloatVector.fromArray(S, st, j * TQ));
            s1 = s1.add(FloatVector.fromArray(S, st, j * TQ + VL));
        }
        FloatVector.fromArray(S, l, 0).fma(FloatVector.fromArray(S, st, kn * TQ), s0).intoArray(l, 0);
        FloatVector.fromArray(S, l, VL).fma(FloatVector.fromArray(S, st, kn * TQ + VL), s1).intoArray(l, VL);
        System.arraycopy(mnew, 0, m, 0, TQ);
    }

    /**
     * Oᵀ rows [ob/TQ, +4) = α·Oᵀ + Σ_j V[j][e..e+3]·Pᵀ[j], α in row kn of st; vb is the packed index
     * of V[k0][e] in its group of DR = 4 dimensions.
     */
    private static void pv4(float[] st, int kn, float[] v, int vb, float[] ot, int ob) {
        FloatVector al0 = FloatVector.fromArray(S, st, kn * TQ);
        FloatVector al1 = FloatVector.fromArray(S, st, kn * TQ + VL);
        FloatVector c00 = FloatVector.fromArray(S, ot, ob).mul(al0);
        FloatVector c01 = FloatVector.fromArray(S, ot, ob + VL).mul(al1);
        FloatVector c10 = FloatVector.fromArray(S, ot, ob + TQ).mul(al0);
        FloatVector c11 = FloatVector.fromArray(S, ot, ob + TQ + VL).mul(al1);
        FloatVector c20 = FloatVector.fromArray(S, ot, ob + 2 * TQ).mul(al0);
        FloatVector c21 = FloatVector.fromArray(S, ot, ob + 2 * TQ + VL).mul(al1);
        FloatVector c30 = FloatVector.fromArray(S, ot, ob + 3 * TQ).mul(al0);
        FloatVector c31 = FloatVector.fromArray(S, ot, ob + 3 * TQ + VL).mul(al1);
        for (int j = 0; j < kn; j++) {
            FloatVector p0 = FloatVector.fromArray(S, st, j * TQ);
            FloatVector p1 = FloatVector.fromArray(S, st, j * TQ + VL);
            int vj = vb + j * DR;
            FloatVector b = FloatVector.broadcast(S, v[vj]);
            c00 = p0.fma(b, c00);
            c01 = p1.fma(b, c01);
            b = FloatVector.broadcast(S, v[vj + 1]);
            c10 = p0.fma(b, c10);
            c11 = p1.fma(b, c11);
            b = FloatVector.broadcast(S, v[vj + 2]);
            c20 = p0.fma(b, c20);
            c21 = p1.fma(b, c21);
            b = FloatVector.broadcast(S, v[vj + 3]);
            c30 = p0.fma(b, c30);
            c31 = p1.fma(b, c31);
        }
        c00.intoArray(ot, ob);
        c01.intoArray(ot, ob + VL);
        c10.intoArray(ot, ob + TQ);
        c11.intoArray(ot, ob + TQ + VL);
        c20.intoArray(ot, ob + 2 * TQ);
        c21.intoArray(ot, ob + 2 * TQ + VL);
        c30.intoArray(ot, ob + 3 * TQ);
        c31.intoArray(ot, ob + 3 * TQ + VL);
    }

    /** The one-row form of {@link #pv4} for head sizes that are not a multiple of 4. */
    private static void pv1(float[] st, int kn, float[] v, int vb, float[] ot, int ob) {
        FloatVector c0 = FloatVector.fromArray(S, ot, ob).mul(FloatVector.fromArray(S, st, kn * TQ));
        FloatVector c1 = FloatVector.fromArray(S, ot, ob + VL).mul(FloatVector.fromArray(S, st, kn * TQ + VL));
        for (int j = 0; j < kn; j++) {
            FloatVector b = FloatVector.broadcast(S, v[vb + j]);
            c0 = FloatVector.fromArray(S, st, j * TQ).fma(b, c0);
            c1 = FloatVector.fromArray(S, st, j * TQ + VL).fma(b, c1);
        }
        c0.intoArray(ot, ob);
        c1.intoArray(ot, ob + VL);
    }
}
