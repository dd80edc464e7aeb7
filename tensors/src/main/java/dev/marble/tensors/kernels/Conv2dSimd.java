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
 * N = output channels, K = KH·KW·IC, without materialising a full im2col.
 *
 * <pre>
 * split (band × group of output-channel blocks) over the threads; a band is a block of output
 * rows × up to 16 tiles of one row, sized so that its A for one slab stays in L2
 * per band:   pack its input into per-thread scratch A (zero padding included, see below)
 *   per input-channel slab icb (KC channels), per NR-wide output-channel block ocb:
 *     decode the weight slab [KH][KW][kc][NR] to F32 scratch (~36 KB), reused by all tiles
 *     per tile of MR = 4 consecutive output pixels of one row, per ky:
 *       acc[4 pixels][2 vectors] = bias (first slab, ky = 0) or 0
 *       for k = (kx, c) in the slab:  w = slab[ky][k][0..NR)
 *                                     acc[p] += broadcast(A[input row oy·s + ky][tile][k][p]) · w
 *       out = acc (+ the partial sums already in out)
 * </pre>
 *
 * A is the band's input "expanded along kx": for input row r, tile g (output columns 4g .. 4g+3),
 * slab icb, tap kx and channel c it holds the 4 pixels x[r][(4g+p)·stride + kx − padLeft][c] side by
 * side, zero outside the image. So the inner loop reads A and the weights each through one index
 * with constant steps (4 and NR floats) over KW·kc steps, and padding, stride and row tails cost no
 * branch. The expansion is ~KW·(rows+KH−1)/rows copies per input element per band, small next to
 * the KH·KW·OC/16 FMA cycles each input element feeds (3-7% of the time measured, most at OC=128).
 *
 * <p>Why 4 × 2 vectors: C2 hoists all broadcasts of an iteration to its top, so accumulators +
 * weight vectors + broadcasts must fit the 16 AVX2 registers (8 + 2 + 4); a 6 × 2 tile spills an
 * accumulator and runs at half speed. Manual unrolling makes it spill too. Each step is 8 FMAs,
 * 2 vector loads and 4 broadcast loads; with A and the slab in L1 this loop reaches ~90% of a pure
 * register-FMA loop in a micro-benchmark. KC = 64 for 3×3 (36 KB slabs) measured faster than 32 or
 * 128: longer inner loops and fewer partial-sum passes.
 */
final class Conv2dSimd {
    private static final VectorSpecies<Float> F = Simd.FLOAT;
    private static final int VL = F.length();
    /** Output channels per tile: two vectors. ConvWeights packs with the same width. */
    static final int NR = 2 * VL;
    /** Output pixels per tile (consecutive in one output row). */
    private static final int MR = 4;
    /** Most tiles (of one output row) in a band. */
    private static final int MAX_BAND_TILES = 16;
    /**
     * A band's A for one slab is kept within this many floats (384 KB) so that it stays in the 512 KB
     * L2 while every output-channel block re-reads it; that measured 10-20% faster than bands of
     * 1024 pixels whose A was read from L3. It leaves ~190-400 pixels per band, enough to amortise
     * a slab decode (~0.4 cycle per weight) over the band's tiles.
     */
    private static final int L2_FLOATS = 96 << 10;
    /** Upper bound on a band's A in floats (8 MB), lowered band by band for very wide inputs. */
    private static final int A_MAX = 2 << 20;
    private static final ValueLayout.OfFloat FL = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    /** Per-thread scratch, grown on demand and kept: A, one input row, a decoded slab, one edge tile. */
    private static final class Scratch {
        float[] a = new float[0];
        float[] row = new float[0];
        float[] w = new float[0];
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
        int kcMax = w.channelsPerSlab();
        int icBlocks = (ic + kcMax - 1) / kcMax;          // slabs holding real channels
        MemorySegment xs = x.data();
        MemorySegment os = out.data();

        // 1. Bands: blocks of output rows × tile columns whose A for one input-channel slab stays in L2
        //    (every output-channel block re-reads it); groups of output-channel blocks when there are
        //    too few bands to keep every thread busy (deep UNet levels: 8×8 or 16×16 pixels).
        int tiles = (ow + MR - 1) / MR;                   // tiles per output row
        int colBlocks = (tiles + MAX_BAND_TILES - 1) / MAX_BAND_TILES;
        int bandTiles = (tiles + colBlocks - 1) / colBlocks;
        long tileFloats = (long) kw * ic * MR;            // A floats per (input row, tile)
        long rowFloats = bandTiles * tileFloats;          // A floats per input row of a band
        int bandRows = bandRows(oh, stride, kh, (long) bandTiles * kw * kcMax * MR, rowFloats);
        int rowBlocks = (oh + bandRows - 1) / bandRows;
        int rowsPerBand = (oh + rowBlocks - 1) / rowBlocks;
        long aFloats = ((long) (rowsPerBand - 1) * stride + kh) * rowFloats;
        long spanFloats = ((long) (bandTiles * MR - 1) * stride + kw) * ic; // input columns a band reads
        if (aFloats > Integer.MAX_VALUE - 16 || spanFloats > Integer.MAX_VALUE - 16) {
            throw new MarbleException("conv2d: rows of " + wd + " × " + ic + " floats are too large for " + x);
        }
        int bandsPerImage = rowBlocks * colBlocks;
        int bands = batch * bandsPerImage;
        int ocBlocks = w.outBlocks();
        int wanted = Math.min(ocBlocks, Math.max(1, (4 * Parallel.threads() + bands - 1) / bands));
        int perGroup = (ocBlocks + wanted - 1) / wanted;
        int groups = (ocBlocks + perGroup - 1) / perGroup;
        int slabFloats = kh * kw * w.slabChannels(0) * NR;

        Parallel.forChunks(bands * groups, (chunk, from, to) -> {
            Scratch s = SCRATCH.get();
            if (s.a.length < aFloats) {
                s.a = new float[(int) aFloats];
            }
            if (s.row.length < spanFloats) {
                s.row = new float[(int) spanFloats];
            }
            if (s.w.length < slabFloats) {
                s.w = new float[slabFloats];
            }
            float[] a = s.a;
            float[] wbuf = s.w;
            int loaded = -1;
            for (int item = from; item < to; item++) {
                int band = item / groups;
                int group = item % groups;
                int n = band / bandsPerImage;
                int oy0 = band % bandsPerImage / colBlocks * rowsPerBand;
                int oy1 = Math.min(oh, oy0 + rowsPerBand);
                int g0 = band % colBlocks * bandTiles;
                int g1 = Math.min(tiles, g0 + bandTiles);
                // 2. A for the band (shared by the band's output-channel groups on this thread).
                if (band != loaded) {
                    packBand(xs, n, h, wd, ic, kcMax, kw, stride, padLeft, oy0 * stride - padTop,
                            (oy1 - oy0 - 1) * stride + kh, g0, g1 - g0, (int) rowFloats, s.row, a);
                    loaded = band;
                }
                int ocb1 = Math.min(ocBlocks, (group + 1) * perGroup);
                // 3. Tiles: every weight slab is decoded once per band and reused by all its tiles.
                for (int icb = 0; icb < icBlocks; icb++) {
                    int c0 = icb * kcMax;
                    int kc = Math.min(kcMax, ic - c0);    // real channels of the slab
                    int steps = kw * kc;                  // inner-loop length per ky
                    for (int ocb = group * perGroup; ocb < ocb1; ocb++) {
                        decodeCompact(w, ocb, icb, kh * kw, kc, wbuf);
                        int ocValid = Math.min(NR, oc - ocb * NR);
                        for (int oy = oy0; oy < oy1; oy++) {
                            long outRow = ((long) n * oh + oy) * ow;
                            long aRow = (long) (oy - oy0) * stride * rowFloats + (long) kw * c0 * MR;
                            for (int g = g0; g < g1; g++) {
                                int aTile = (int) (aRow + (g - g0) * tileFloats);
                                long outOff = ((outRow + (long) g * MR) * oc + (long) ocb * NR) * 4;
                                int m = Math.min(MR, ow - g * MR);
                                for (int ky = 0; ky < kh; ky++) {
                                    tile(a, aTile + ky * (int) rowFloats, steps, wbuf, ky * steps * NR, os, outOff,
                                            oc, m, ocValid, icb == 0 && ky == 0, w.paddedBias(), ocb * NR, s.tile);
                                }
                            }
                        }
                    }
                }
            }
        });
    }

    /**
     * Output rows per band: as many as keep one slab's share of A (sliceFloats per input row) within
     * L2_FLOATS and the whole of A within A_MAX; at least one.
     */
    private static int bandRows(int oh, int stride, int kh, long sliceFloats, long rowFloats) {
        int rows = oh;
        while (rows > 1) {
            long inRows = (long) (rows - 1) * stride + kh;
            if (inRows * sliceFloats <= L2_FLOATS && inRows * rowFloats <= A_MAX) {
                break;
            }
            rows--;
        }
        return rows;
    }

    /** Decodes slab (ocb, icb) and closes the gaps when it stores more channels (kcs) than are real (kc). */
    private static void decodeCompact(ConvWeights w, int ocb, int icb, int taps, int kc, float[] dst) {
        w.decodeSlab(ocb, icb, dst, 0);
        int kcs = w.slabChannels(icb);
        if (kc < kcs) {
            for (int t = 1; t < taps; t++) {
                System.arraycopy(dst, t * kcs * NR, dst, t * kc * NR, kc * NR);
            }
        }
    }

    /**
     * Fills A for input rows [iy0, iy0 + rows) of image n and the band's tiles g0 .. g0+nt−1:
     * A[r][g − g0][slab][kx][c][p] = x[iy0 + r][(MR·g + p)·stride + kx − padLeft][slab·KC + c], zero
     * outside the image. Each input row's span of columns is first copied to rowBuf in one bulk copy.
     */
    private static void packBand(MemorySegment xs, int n, int h, int wd, int ic, int kcMax, int kw, int stride,
            int padLeft, int iy0, int rows, int g0, int nt, int rowFloats, float[] rowBuf, float[] a) {
        int tileFloats = kw * ic * MR;
        int ixLo = g0 * MR * stride - padLeft;                       // first input column of the span
        int ixHi = ((g0 + nt) * MR - 1) * stride - padLeft + kw;     // one past the last
        int cLo = Math.max(0, ixLo);
        int cHi = Math.min(wd, ixHi);
        for (int r = 0; r < rows; r++) {
            int iy = iy0 + r;
            int base = r * rowFloats;
            if (iy < 0 || iy >= h || cLo >= cHi) {
                Arrays.fill(a, base, base + nt * tileFloats, 0f);
                continue;
            }
            MemorySegment.copy(xs, FL, (((long) n * h + iy) * wd + cLo) * ic * 4, rowBuf, 0, (cHi - cLo) * ic);
            for (int g = 0; g < nt; g++) {
                int tb = base + g * tileFloats;
                for (int c0 = 0; c0 < ic; c0 += kcMax) {
                    int kc = Math.min(kcMax, ic - c0);
                    for (int kx = 0; kx < kw; kx++) {
                        int d0 = tb + (kw * c0 + kx * kc) * MR;
                        for (int p = 0; p < MR; p++) {
                            int ix = ((g0 + g) * MR + p) * stride + kx - padLeft;
                            int d = d0 + p;
                            if (ix < cLo || ix >= cHi) {
                                for (int c = 0; c < kc; c++) {
                                    a[d + c * MR] = 0f;
                                }
                            } else {
                                int src = (ix - cLo) * ic + c0;
                                for (int c = 0; c < kc; c++) {
                                    a[d + c * MR] = rowBuf[src + c];
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /**
     * One tile for one kernel row: output pixels 4g .. 4g+m−1 of one row (m ≤ MR) × output channels
     * ocb·NR .. +NR, over one input-channel slab of (ky, every kx). The accumulators start from the
     * bias (first slab, ky = 0) or zero, and the partial sums already in out are added after the loop:
     * issued there, their loads (L1 hits for ky > 0, else often L3) overlap the FMAs instead of
     * stalling the first ones. A single loop per call, not a ky loop around it: with the extra loop
     * level C2 sometimes keeps one more vector live and spills an accumulator, which halves the speed.
     * Pixels beyond m are computed from A's padding and not stored; a short tile or a short channel
     * block goes through the small tile buffer, full ones use out directly.
     */
    private static void tile(float[] a, int a0, int steps, float[] w, int w0, MemorySegment out, long outOff, int oc,
            int m, int ocValid, boolean first, float[] bias, int biasOff, float[] tmp) {
        FloatVector c00;
        FloatVector c01;
        if (first) {
            c00 = FloatVector.fromArray(F, bias, biasOff);
            c01 = FloatVector.fromArray(F, bias, biasOff + VL);
        } else {
            c00 = FloatVector.zero(F);
            c01 = c00;
        }
        FloatVector c10 = c00;
        FloatVector c11 = c01;
        FloatVector c20 = c00;
        FloatVector c21 = c01;
        FloatVector c30 = c00;
        FloatVector c31 = c01;
        for (int k = 0; k < steps; k++) {
            int ak = a0 + k * MR;
            int wk = w0 + k * NR;
            FloatVector wv0 = FloatVector.fromArray(F, w, wk);
            FloatVector wv1 = FloatVector.fromArray(F, w, wk + VL);
            FloatVector v = FloatVector.broadcast(F, a[ak]);
            c00 = v.fma(wv0, c00);
            c01 = v.fma(wv1, c01);
            v = FloatVector.broadcast(F, a[ak + 1]);
            c10 = v.fma(wv0, c10);
            c11 = v.fma(wv1, c11);
            v = FloatVector.broadcast(F, a[ak + 2]);
            c20 = v.fma(wv0, c20);
            c21 = v.fma(wv1, c21);
            v = FloatVector.broadcast(F, a[ak + 3]);
            c30 = v.fma(wv0, c30);
            c31 = v.fma(wv1, c31);
        }
        long pixBytes = (long) oc * 4;
        if (m == MR && ocValid == NR) {
            if (!first) {
                c00 = c00.add(FloatVector.fromMemorySegment(F, out, outOff, NATIVE));
                c01 = c01.add(FloatVector.fromMemorySegment(F, out, outOff + VL * 4, NATIVE));
                c10 = c10.add(FloatVector.fromMemorySegment(F, out, outOff + pixBytes, NATIVE));
                c11 = c11.add(FloatVector.fromMemorySegment(F, out, outOff + pixBytes + VL * 4, NATIVE));
                c20 = c20.add(FloatVector.fromMemorySegment(F, out, outOff + 2 * pixBytes, NATIVE));
                c21 = c21.add(FloatVector.fromMemorySegment(F, out, outOff + 2 * pixBytes + VL * 4, NATIVE));
                c30 = c30.add(FloatVector.fromMemorySegment(F, out, outOff + 3 * pixBytes, NATIVE));
                c31 = c31.add(FloatVector.fromMemorySegment(F, out, outOff + 3 * pixBytes + VL * 4, NATIVE));
            }
            c00.intoMemorySegment(out, outOff, NATIVE);
            c01.intoMemorySegment(out, outOff + VL * 4, NATIVE);
            c10.intoMemorySegment(out, outOff + pixBytes, NATIVE);
            c11.intoMemorySegment(out, outOff + pixBytes + VL * 4, NATIVE);
            c20.intoMemorySegment(out, outOff + 2 * pixBytes, NATIVE);
            c21.intoMemorySegment(out, outOff + 2 * pixBytes + VL * 4, NATIVE);
            c30.intoMemorySegment(out, outOff + 3 * pixBytes, NATIVE);
            c31.intoMemorySegment(out, outOff + 3 * pixBytes + VL * 4, NATIVE);
        } else {
            c00.intoArray(tmp, 0);
            c01.intoArray(tmp, VL);
            c10.intoArray(tmp, NR);
            c11.intoArray(tmp, NR + VL);
            c20.intoArray(tmp, 2 * NR);
            c21.intoArray(tmp, 2 * NR + VL);
            c30.intoArray(tmp, 3 * NR);
            c31.intoArray(tmp, 3 * NR + VL);
            for (int p = 0; p < m; p++) {
                long o = outOff + p * pixBytes;
                for (int j = 0; j < ocValid; j++) {
                    float prev = first ? 0f : out.get(FL, o + 4L * j);
                    out.set(FL, o + 4L * j, prev + tmp[p * NR + j]);
                }
            }
        }
    }
}
