package dev.marble.tensors.kernels;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vector path of {@link Conv2d}: direct convolution as an implicit GEMM, M = output pixels,
 * N = output channels, K = KH·KW·IC, without materialising im2col.
 *
 * <pre>
 * split (band of output rows × group of output-channel blocks) over the threads
 * per band:   copy its input rows, zero-padded, into per-thread scratch A   (no branches later)
 *   per NR-wide output-channel block ocb, per input-channel slab icb:
 *     decode the weight slab [KH][KW][kcs][NR] to F32 scratch (~16 KB, stays in L1)
 *     per tile of MR consecutive output pixels (may cross rows):
 *       acc[MR][2 vectors] = bias (first slab) or the partial sums in out
 *       for (ky, kx), for c in slab: w = slab[ky][kx][c][0..NR)
 *                                    acc[p] += broadcast(A[pixel p shifted by (ky, kx)][c]) · w
 *       store acc to out
 * </pre>
 *
 * The tile is 6 pixels × 2 vectors: 12 accumulators + 2 weight vectors + 1 broadcast = 15 of the 16
 * AVX2 registers; each step does 12 FMAs for 2 vector loads and 6 broadcast loads. Every pixel of
 * A is addressed as base[p] + (ky·rowStride + kx·IC) + c, the same for interior and border pixels,
 * because A holds the padding as real zeros. The band is sized so that a slab decode is shared by
 * ≥ 512 pixels (decode costs ~2% then).
 */
final class Conv2dSimd {
    private static final VectorSpecies<Float> F = Simd.FLOAT;
    private static final int VL = F.length();
    /** Output channels per tile: two vectors. ConvWeights packs with the same width. */
    static final int NR = 2 * VL;
    /** Output pixels per tile. */
    private static final int MR = 6;
    /** Output pixels a band aims for, so that one slab decode serves many tiles. */
    private static final int BAND_PIXELS = 512;
    private static final ValueLayout.OfFloat FL = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    /** Per-thread scratch, grown on demand and kept: A rows, a decoded slab, pixel bases, one edge tile. */
    private static final class Scratch {
        float[] a = new float[0];
        float[] w = new float[0];
        int[] pix = new int[0];
        final float[] tile = new float[MR * NR];
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private Conv2dSimd() {
    }

    static void forward(Tensor x, ConvWeights w, int stride, int padTop, int padLeft, Tensor out) {
        int batch = x.size(0);
        int h = x.size(1);
        int wd = x.size(2);
        int ic = x.size(3);
        int oh = out.size(1);
        int ow = out.size(2);
        int oc = out.size(3);
        int kh = w.kernelHeight();
        int kw = w.kernelWidth();
        int kk = kh * kw;
        MemorySegment xs = x.data();
        MemorySegment os = out.data();

        // 1. Bands of output rows, and groups of output-channel blocks when there are too few bands
        //    to keep every thread busy (deep UNet levels: 8×8 or 16×16 pixels).
        int aCols = (ow - 1) * stride + kw;             // padded input columns a band row spans
        int aRow = aCols * ic;                          // floats per band row of A
        int bandRows = Math.min(oh, Math.max(1, (BAND_PIXELS + ow - 1) / ow));
        int bandsPerImage = (oh + bandRows - 1) / bandRows;
        int bands = batch * bandsPerImage;
        int ocBlocks = w.outBlocks();
        int wanted = Math.max(1, (4 * Parallel.threads() + bands - 1) / bands);
        int perGroup = (ocBlocks + Math.min(ocBlocks, wanted) - 1) / Math.min(ocBlocks, wanted);
        int groups = (ocBlocks + perGroup - 1) / perGroup;

        // 2. Offset of input (ky, kx) from a pixel's base in A.
        int[] deltas = new int[kk];
        for (int ky = 0; ky < kh; ky++) {
            for (int kx = 0; kx < kw; kx++) {
                deltas[ky * kw + kx] = ky * aRow + kx * ic;
            }
        }
        int maxARows = (bandRows - 1) * stride + kh;
        if ((long) maxARows * aRow > Integer.MAX_VALUE - 16) {
            throw new MarbleException("conv2d: input rows of " + aCols + " × " + ic + " floats are too large for "
                    + x);
        }
        int slabFloats = kk * w.channelsPerSlab() * NR;

        Parallel.forChunks(bands * groups, (chunk, from, to) -> {
            Scratch s = SCRATCH.get();
            if (s.a.length < maxARows * aRow) {
                s.a = new float[maxARows * aRow];
            }
            if (s.w.length < slabFloats) {
                s.w = new float[slabFloats];
            }
            if (s.pix.length < bandRows * ow) {
                s.pix = new int[bandRows * ow];
            }
            float[] a = s.a;
            float[] wbuf = s.w;
            int[] pix = s.pix;
            int loaded = -1;
            for (int item = from; item < to; item++) {
                int band = item / groups;
                int group = item % groups;
                int n = band / bandsPerImage;
                int oy0 = band % bandsPerImage * bandRows;
                int oy1 = Math.min(oh, oy0 + bandRows);
                int pixels = (oy1 - oy0) * ow;
                // 3. A: the band's input rows with their zero padding; pixel bases into it.
                if (band != loaded) {
                    fillRows(xs, n, h, wd, ic, oy0 * stride - padTop, (oy1 - oy0 - 1) * stride + kh, padLeft, aCols, a);
                    for (int q = 0; q < pixels; q++) {
                        pix[q] = (q / ow * stride * aCols + q % ow * stride) * ic;
                    }
                    loaded = band;
                }
                long outPix0 = ((long) n * oh + oy0) * ow;
                int ocb1 = Math.min(ocBlocks, (group + 1) * perGroup);
                // 4. Tiles: every slab of weights is decoded once per band and reused by all its tiles.
                for (int ocb = group * perGroup; ocb < ocb1; ocb++) {
                    int ocValid = Math.min(NR, oc - ocb * NR);
                    for (int icb = 0; icb < w.inBlocks(); icb++) {
                        int c0 = icb * w.channelsPerSlab();
                        int kc = Math.min(w.channelsPerSlab(), ic - c0); // the real channels of the slab
                        w.decodeSlab(ocb, icb, wbuf);
                        for (int q = 0; q < pixels; q += MR) {
                            tile(a, pix, q, Math.min(MR, pixels - q), c0, kc, wbuf, w.slabChannels(icb), deltas,
                                    os, ((outPix0 + q) * oc + (long) ocb * NR) * 4, oc, ocValid, icb == 0,
                                    w.paddedBias(), ocb * NR, s.tile);
                        }
                    }
                }
            }
        });
    }

    /**
     * Copies input rows [iy0, iy0 + rows) of image n into A as rows of aCols pixels, column c holding
     * input column c − padLeft; rows and columns outside the image are zeros.
     */
    private static void fillRows(MemorySegment xs, int n, int h, int wd, int ic, int iy0, int rows, int padLeft,
            int aCols, float[] a) {
        int aRow = aCols * ic;
        int cLo = Math.min(aCols, Math.max(0, padLeft));       // first column inside the image
        int cHi = Math.max(cLo, Math.min(aCols, wd + padLeft)); // one past the last
        for (int r = 0; r < rows; r++) {
            int iy = iy0 + r;
            int dst = r * aRow;
            if (iy < 0 || iy >= h || cHi == cLo) {
                Arrays.fill(a, dst, dst + aRow, 0f);
                continue;
            }
            Arrays.fill(a, dst, dst + cLo * ic, 0f);
            long src = (((long) n * h + iy) * wd + (cLo - padLeft)) * ic * 4;
            MemorySegment.copy(xs, FL, src, a, dst + cLo * ic, (cHi - cLo) * ic);
            Arrays.fill(a, dst + cHi * ic, dst + aRow, 0f);
        }
    }

    /**
     * One tile: output pixels q .. q+m−1 of the band (m ≤ MR) × output channels ocb·NR .. +NR, over
     * input channels c0 .. c0+kc−1 of every (ky, kx). Adds to the partial sums in out unless first.
     * A short tile repeats its last pixel (computed, not stored); a short channel block and short
     * tiles go through the small tile buffer, full ones load and store out directly.
     */
    private static void tile(float[] a, int[] pix, int q, int m, int c0, int kc, float[] w, int kcs, int[] deltas,
            MemorySegment out, long outOff, int oc, int ocValid, boolean first, float[] bias, int biasOff,
            float[] tmp) {
        int last = q + m - 1;
        int b0 = pix[q] + c0;
        int b1 = pix[Math.min(q + 1, last)] + c0;
        int b2 = pix[Math.min(q + 2, last)] + c0;
        int b3 = pix[Math.min(q + 3, last)] + c0;
        int b4 = pix[Math.min(q + 4, last)] + c0;
        int b5 = pix[Math.min(q + 5, last)] + c0;
        long pixBytes = (long) oc * 4;
        boolean direct = m == MR && ocValid == NR;
        FloatVector c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        if (first) {
            FloatVector bias0 = FloatVector.fromArray(F, bias, biasOff);
            FloatVector bias1 = FloatVector.fromArray(F, bias, biasOff + VL);
            c00 = bias0;
            c01 = bias1;
            c10 = bias0;
            c11 = bias1;
            c20 = bias0;
            c21 = bias1;
            c30 = bias0;
            c31 = bias1;
            c40 = bias0;
            c41 = bias1;
            c50 = bias0;
            c51 = bias1;
        } else if (direct) {
            c00 = FloatVector.fromMemorySegment(F, out, outOff, NATIVE);
            c01 = FloatVector.fromMemorySegment(F, out, outOff + VL * 4, NATIVE);
            c10 = FloatVector.fromMemorySegment(F, out, outOff + pixBytes, NATIVE);
            c11 = FloatVector.fromMemorySegment(F, out, outOff + pixBytes + VL * 4, NATIVE);
            c20 = FloatVector.fromMemorySegment(F, out, outOff + 2 * pixBytes, NATIVE);
            c21 = FloatVector.fromMemorySegment(F, out, outOff + 2 * pixBytes + VL * 4, NATIVE);
            c30 = FloatVector.fromMemorySegment(F, out, outOff + 3 * pixBytes, NATIVE);
            c31 = FloatVector.fromMemorySegment(F, out, outOff + 3 * pixBytes + VL * 4, NATIVE);
            c40 = FloatVector.fromMemorySegment(F, out, outOff + 4 * pixBytes, NATIVE);
            c41 = FloatVector.fromMemorySegment(F, out, outOff + 4 * pixBytes + VL * 4, NATIVE);
            c50 = FloatVector.fromMemorySegment(F, out, outOff + 5 * pixBytes, NATIVE);
            c51 = FloatVector.fromMemorySegment(F, out, outOff + 5 * pixBytes + VL * 4, NATIVE);
        } else {
            Arrays.fill(tmp, 0f);
            for (int p = 0; p < m; p++) {
                MemorySegment.copy(out, FL, outOff + p * pixBytes, tmp, p * NR, ocValid);
            }
            c00 = FloatVector.fromArray(F, tmp, 0);
            c01 = FloatVector.fromArray(F, tmp, VL);
            c10 = FloatVector.fromArray(F, tmp, NR);
            c11 = FloatVector.fromArray(F, tmp, NR + VL);
            c20 = FloatVector.fromArray(F, tmp, 2 * NR);
            c21 = FloatVector.fromArray(F, tmp, 2 * NR + VL);
            c30 = FloatVector.fromArray(F, tmp, 3 * NR);
            c31 = FloatVector.fromArray(F, tmp, 3 * NR + VL);
            c40 = FloatVector.fromArray(F, tmp, 4 * NR);
            c41 = FloatVector.fromArray(F, tmp, 4 * NR + VL);
            c50 = FloatVector.fromArray(F, tmp, 5 * NR);
            c51 = FloatVector.fromArray(F, tmp, 5 * NR + VL);
        }
        int kstride = kcs * NR;
        for (int t = 0; t < deltas.length; t++) {
            int d = deltas[t];
            int p0 = b0 + d;
            int p1 = b1 + d;
            int p2 = b2 + d;
            int p3 = b3 + d;
            int p4 = b4 + d;
            int p5 = b5 + d;
            int wo = t * kstride;
            for (int i = 0; i < kc; i++) {
                int wi = wo + i * NR;
                FloatVector w0 = FloatVector.fromArray(F, w, wi);
                FloatVector w1 = FloatVector.fromArray(F, w, wi + VL);
                FloatVector v = FloatVector.broadcast(F, a[p0 + i]);
                c00 = v.fma(w0, c00);
                c01 = v.fma(w1, c01);
                v = FloatVector.broadcast(F, a[p1 + i]);
                c10 = v.fma(w0, c10);
                c11 = v.fma(w1, c11);
                v = FloatVector.broadcast(F, a[p2 + i]);
                c20 = v.fma(w0, c20);
                c21 = v.fma(w1, c21);
                v = FloatVector.broadcast(F, a[p3 + i]);
                c30 = v.fma(w0, c30);
                c31 = v.fma(w1, c31);
                v = FloatVector.broadcast(F, a[p4 + i]);
                c40 = v.fma(w0, c40);
                c41 = v.fma(w1, c41);
                v = FloatVector.broadcast(F, a[p5 + i]);
                c50 = v.fma(w0, c50);
                c51 = v.fma(w1, c51);
            }
        }
        if (direct) {
            c00.intoMemorySegment(out, outOff, NATIVE);
            c01.intoMemorySegment(out, outOff + VL * 4, NATIVE);
            c10.intoMemorySegment(out, outOff + pixBytes, NATIVE);
            c11.intoMemorySegment(out, outOff + pixBytes + VL * 4, NATIVE);
            c20.intoMemorySegment(out, outOff + 2 * pixBytes, NATIVE);
            c21.intoMemorySegment(out, outOff + 2 * pixBytes + VL * 4, NATIVE);
            c30.intoMemorySegment(out, outOff + 3 * pixBytes, NATIVE);
            c31.intoMemorySegment(out, outOff + 3 * pixBytes + VL * 4, NATIVE);
            c40.intoMemorySegment(out, outOff + 4 * pixBytes, NATIVE);
            c41.intoMemorySegment(out, outOff + 4 * pixBytes + VL * 4, NATIVE);
            c50.intoMemorySegment(out, outOff + 5 * pixBytes, NATIVE);
            c51.intoMemorySegment(out, outOff + 5 * pixBytes + VL * 4, NATIVE);
        } else {
            c00.intoArray(tmp, 0);
            c01.intoArray(tmp, VL);
            c10.intoArray(tmp, NR);
            c11.intoArray(tmp, NR + VL);
            c20.intoArray(tmp, 2 * NR);
            c21.intoArray(tmp, 2 * NR + VL);
            c30.intoArray(tmp, 3 * NR);
            c31.intoArray(tmp, 3 * NR + VL);
            c40.intoArray(tmp, 4 * NR);
            c41.intoArray(tmp, 4 * NR + VL);
            c50.intoArray(tmp, 5 * NR);
            c51.intoArray(tmp, 5 * NR + VL);
            for (int p = 0; p < m; p++) {
                MemorySegment.copy(tmp, p * NR, out, FL, outOff + p * pixBytes, ocValid);
            }
        }
    }
}
