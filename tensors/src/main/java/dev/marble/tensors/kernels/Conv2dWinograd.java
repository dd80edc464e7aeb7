package dev.marble.tensors.kernels;

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
 * A second vector path of {@link Conv2d} for 3×3 stride-1 kernels: Winograd F(4×4, 3×3). Each
 * output tile of 4×4 pixels comes from a 6×6 input tile as Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A, so a
 * tile costs 36 multiply-adds per (input, output channel) instead of the direct 144; the transforms
 * are per tile and channel, not per channel pair.
 *
 * <p>The matrices come from Toom-Cook at the points 0, 1, −1, ½, −2 and ∞: with V the 6×6
 * Vandermonde matrix of the points (∞ row = x⁵), Bᵀ = (V⁻¹)ᵀ, G's rows are the points' powers
 * (1, a, a²) and Aᵀ's columns (1, a, a², a³); rows of Bᵀ are then scaled to small integers and the
 * scale of each position moved from G to the columns of Aᵀ, so G has integer entries too:
 *
 * <pre>
 *        ⎡2 −3 −4  3  2 0⎤        ⎡1  0 0⎤        ⎡½ −⅙ −⅙ 4/15  1/30 0⎤
 *        ⎢0  2 −1 −5 −2 0⎥        ⎢1  1 1⎥        ⎢0 −⅙  ⅙ 2/15 −1/15 0⎥
 *   Bᵀ = ⎢0  2 −5  1  2 0⎥   G =  ⎢1 −1 1⎥   Aᵀ = ⎢0 −⅙ −⅙ 1/15  2/15 0⎥
 *        ⎢0  2  1 −2 −1 0⎥        ⎢4  2 1⎥        ⎣0 −⅙  ⅙ 1/30 −4/15 ½⎦
 *        ⎢0  1 −2 −1  2 0⎥        ⎢1 −2 4⎥
 *        ⎣0  2 −3 −4  3 2⎦        ⎣0  0 1⎦
 * </pre>
 *
 * In a float32 simulation (64 input channels, uniform data) these points gave half the error of
 * the common 0, ±1, ±2, ∞ (1.2e-6 vs 2.6e-6 of max|y|; direct summation 0.5e-6).
 *
 * <pre>
 * split (band × group of output-channel blocks) over the threads; a band is T tiles (any images)
 * per band, per input-channel slab (the KC channels of a {@link ConvWeights} slab):
 *   V[36][T][kc] = Bᵀ d B of every tile                         (input transform, per-thread)
 *   per NR-wide output-channel block of the group:
 *     U[36][kc][NR] = G g Gᵀ of the decoded weight slab          (weight transform, per-thread)
 *     per position ξ, per 4 tiles:  M[ξ][4 tiles][NR] += V[ξ][4 tiles][kc] · U[ξ][kc][NR]
 *     after the last slab: out[4×4 pixels of each tile][NR] = Aᵀ M A + bias, valid pixels only
 * </pre>
 *
 * Nothing transformed is stored with the model: U is rebuilt per band from the weight in its
 * storage format (F32/F16/BF16 or q8_0/q4_0/q4_k through the same slab decode as the direct path),
 * which is why a band holds many tiles: the decode and transform of a slab cost roughly as much as
 * 5-15 tiles' share of the GEMMs (instruction count; profile), spread over the band's T tiles. At
 * the deepest UNet levels (2 × 16×16 pixels: 32 tiles in all) every U is built exactly once per
 * call, the least possible without storing it.
 *
 * <p>The micro-kernel is the direct path's 4 × 2 vectors (see {@link Conv2dSimd} for why 4 × 2 on
 * 16 registers), with 4 tiles in place of 4 pixels: V holds the 4 tiles of a group one channel row
 * after the other, [ξ][T/4][4][kcv], so the input transform writes whole channel vectors.
 */
final class Conv2dWinograd {
    private static final VectorSpecies<Float> F = Simd.FLOAT;
    private static final int VL = F.length();
    /** Output channels per block: two vectors, as ConvWeights packs. */
    private static final int NR = 2 * VL;
    /** Tiles per micro-kernel call. */
    private static final int MR = 4;
    /** Transformed positions of a tile (6×6). */
    private static final int XI = 36;
    /**
     * Most tiles in a band (a multiple of MR): 64 (1024 output pixels) measured ~15% faster than 32,
     * and the same as 128 within the noise, at the UNet and VAE sizes.
     */
    private static final int BAND_TILES = 64;
    /**
     * Floats added to the step between positions ξ in V, U and M: without it the step is a multiple
     * of 4 KB for the usual sizes, and the 36 positions of one tile, written or read together by the
     * transforms, all fall into the same L1 set.
     */
    private static final int SKEW = 16;
    /** Most floats of accumulators M per thread (8 MB, well inside L3 for both threads). */
    private static final int M_MAX = 2 << 20;
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FL = ValueLayout.JAVA_FLOAT_UNALIGNED;

    /** Per-thread scratch, grown on demand and kept. */
    private static final class Scratch {
        float[] v = new float[0];
        float[] u = new float[0];
        float[] m = new float[0];
        float[] slab = new float[0];
        final float[] patch = new float[XI * VL];
        final float[] tmp = new float[XI * VL];
        final float[] y = new float[16 * VL];
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private Conv2dWinograd() {
    }

    /** out = conv(x, w) with stride 1; w is 3×3; out's size follows from the padding. */
    static void forward(Tensor x, ConvWeights w, int padTop, int padLeft, Tensor out) {
        int batch = x.size(0);
        int h = x.size(1);
        int wd = x.size(2);
        int ic = x.size(3);
        int oh = out.size(1);
        int ow = out.size(2);
        int oc = out.size(3);
        int kcMax = w.channelsPerSlab();
        int kcv = roundUp(kcMax, VL);                     // V's channel stride
        int icBlocks = (ic + kcMax - 1) / kcMax;          // slabs holding real channels
        int slabFloats = 9 * w.slabChannels(0) * NR;
        int uXi = w.slabChannels(0) * NR + SKEW;         // U's step from one position to the next
        int uFloats = XI * uXi;
        MemorySegment xs = x.data();
        MemorySegment os = out.data();

        // 1. Bands of T tiles (in tile order: image, tile row, tile column) and groups of output-channel
        //    blocks when there are too few bands to keep every thread busy.
        int tilesH = (oh + 3) / 4;
        int tilesW = (ow + 3) / 4;
        int tilesPerImage = tilesH * tilesW;
        int tiles = batch * tilesPerImage;
        int bands = (tiles + BAND_TILES - 1) / BAND_TILES;
        int bandTiles = roundUp((tiles + bands - 1) / bands, MR);
        int quads = bandTiles / MR;
        int ocBlocks = w.outBlocks();
        int wanted = Math.min(ocBlocks, Math.max(1, (4 * Parallel.threads() + bands - 1) / bands));
        int mXi = bandTiles * NR + SKEW;
        // At most M_MAX floats of M per thread (more groups, each redoing the cheap input transform).
        int perGroup = Math.min((ocBlocks + wanted - 1) / wanted, Math.max(1, M_MAX / (XI * mXi)));
        int groups = (ocBlocks + perGroup - 1) / perGroup;
        int vXi = bandTiles * kcv + SKEW;
        int vFloats = XI * vXi;
        int mFloats = perGroup * XI * mXi;
        float[] bias = w.paddedBias();

        Parallel.forChunks(bands * groups, (chunk, from, to) -> {
            Scratch s = SCRATCH.get();
            if (s.v.length < vFloats) {
                s.v = new float[vFloats];
            }
            if (s.m.length < mFloats) {
                s.m = new float[mFloats];
            }
            if (s.slab.length < slabFloats) {
                s.slab = new float[slabFloats];
            }
            if (s.u.length < uFloats) {
                s.u = new float[uFloats];
            }
            float[] v = s.v;
            float[] m = s.m;
            float[] u = s.u;
            for (int item = from; item < to; item++) {
                int band = item / groups;
                int group = item % groups;
                int t0 = band * bandTiles;
                int ocb0 = group * perGroup;
                int ocb1 = Math.min(ocBlocks, ocb0 + perGroup);
                for (int icb = 0; icb < icBlocks; icb++) {
                    int c0 = icb * kcMax;
                    int kc = Math.min(kcMax, ic - c0);    // real channels of the slab
                    int kcs = w.slabChannels(icb);        // stored channels (a multiple of 32)
                    // 2. Input transform of the band's tiles for this slab.
                    for (int t = 0; t < bandTiles; t++) {
                        inputTile(xs, t0 + t, tiles, tilesPerImage, tilesW, h, wd, ic, padTop, padLeft, c0, kc, v,
                                t * kcv, vXi, s.patch, s.tmp);
                    }
                    for (int ocb = ocb0; ocb < ocb1; ocb++) {
                        // 3. Weight transform of slab (ocb, icb), then the 36 small GEMMs.
                        w.decodeSlab(ocb, icb, s.slab, 0);
                        for (int c = 0; c < kc; c++) {
                            weightChannel(s.slab, c, kcs, u, uXi);
                        }
                        int mBase = (ocb - ocb0) * XI * mXi;
                        for (int xi = 0; xi < XI; xi++) {
                            int v0 = xi * vXi;
                            int m0 = mBase + xi * mXi;
                            for (int q = 0; q < quads; q++) {
                                kernel(v, v0 + q * MR * kcv, kcv, u, xi * uXi, kc, m, m0 + q * MR * NR,
                                        icb == 0);
                            }
                        }
                        // 4. Output transform once the last slab is in (M of this block is still in cache).
                        if (icb == icBlocks - 1) {
                            int ocValid = Math.min(NR, oc - ocb * NR);
                            for (int t = 0; t < bandTiles && t0 + t < tiles; t++) {
                                outputTile(m, mBase + t * NR, mXi, bias, ocb * NR, ocValid, os,
                                        t0 + t, tilesPerImage, tilesW, oh, ow, oc, s.tmp, s.y);
                            }
                        }
                    }
                }
            }
        });
    }

    /**
     * V[ξ][tile][c] = (Bᵀ d B)[ξ] for the 6×6 input tile d of global tile {@code tile}, channels
     * [c0, c0 + kc), written at v[dst + ξ·xiStride + c]. Pixels outside the image, and tiles past the
     * last one (a band's padding), are zero.
     */
    private static void inputTile(MemorySegment xs, int tile, int tiles, int tilesPerImage, int tilesW, int h, int wd,
            int ic, int padTop, int padLeft, int c0, int kc, float[] v, int dst, int xiStride, float[] patch,
            float[] tmp) {
        int n = tile / tilesPerImage;
        int iy0 = tile % tilesPerImage / tilesW * 4 - padTop;
        int ix0 = tile % tilesW * 4 - padLeft;
        boolean inside = tile < tiles && iy0 >= 0 && iy0 + 6 <= h && ix0 >= 0 && ix0 + 6 <= wd;
        long rowBytes = (long) wd * ic * 4;
        for (int c = 0; c < kc; c += VL) {
            int lanes = Math.min(VL, kc - c);             // < VL only for the slab's channel tail
            // Bᵀ d down each column x into tmp[i][x]: straight from the input inside the image, else
            // through a zero-padded copy of the tile.
            if (inside && lanes == VL) {
                long at = ((((long) n * h + iy0) * wd + ix0) * ic + c0 + c) * 4;
                for (int x = 0; x < 6; x++) {
                    inputTransform(xs, at + (long) x * ic * 4, rowBytes, tmp, x * VL, 6 * VL);
                }
            } else {
                gather(xs, tile < tiles, n, iy0, ix0, h, wd, ic, c0 + c, lanes, patch);
                for (int x = 0; x < 6; x++) {
                    inputTransform(patch, x * VL, 6 * VL, tmp, x * VL, 6 * VL);
                }
            }
            // (Bᵀ d) B along each row i: V[6i + j].
            for (int i = 0; i < 6; i++) {
                inputTransform(tmp, i * 6 * VL, VL, v, dst + i * 6 * xiStride + c, xiStride);
            }
        }
    }

    /** patch[y][x][0..VL) = the tile's pixel (iy0 + y, ix0 + x), channels [c, c + lanes), zero elsewhere. */
    private static void gather(MemorySegment xs, boolean real, int n, int iy0, int ix0, int h, int wd, int ic, int c,
            int lanes, float[] patch) {
        for (int y = 0; y < 6; y++) {
            int iy = iy0 + y;
            boolean rowIn = real && iy >= 0 && iy < h;
            long rowOff = (((long) n * h + iy) * wd) * ic + c;
            for (int x = 0; x < 6; x++) {
                int ix = ix0 + x;
                int at = (y * 6 + x) * VL;
                if (!rowIn || ix < 0 || ix >= wd) {
                    Arrays.fill(patch, at, at + VL, 0f);
                } else if (lanes == VL) {
                    FloatVector.fromMemorySegment(F, xs, (rowOff + (long) ix * ic) * 4, NATIVE).intoArray(patch, at);
                } else {
                    MemorySegment.copy(xs, FL, (rowOff + (long) ix * ic) * 4, patch, at, lanes);
                    Arrays.fill(patch, at + lanes, at + VL, 0f);
                }
            }
        }
    }

    /**
     * As {@link #inputTransform(float[], int, int, float[], int, int)} with d_k read from the input at
     * byte {@code s + k·ss}. (The arithmetic is repeated rather than shared through a method taking
     * vectors: C2 does not always inline such a method here, and then boxes every vector.)
     */
    private static void inputTransform(MemorySegment src, long s, long ss, float[] dst, int d, int ds) {
        FloatVector d0 = FloatVector.fromMemorySegment(F, src, s, NATIVE);
        FloatVector d1 = FloatVector.fromMemorySegment(F, src, s + ss, NATIVE);
        FloatVector d2 = FloatVector.fromMemorySegment(F, src, s + 2 * ss, NATIVE);
        FloatVector d3 = FloatVector.fromMemorySegment(F, src, s + 3 * ss, NATIVE);
        FloatVector d4 = FloatVector.fromMemorySegment(F, src, s + 4 * ss, NATIVE);
        FloatVector d5 = FloatVector.fromMemorySegment(F, src, s + 5 * ss, NATIVE);
        d0.add(d4).mul(2f).add(d3.sub(d1).mul(3f)).sub(d2.mul(4f)).intoArray(dst, d);
        d1.sub(d4).mul(2f).sub(d2).sub(d3.mul(5f)).intoArray(dst, d + ds);
        d1.add(d4).mul(2f).add(d3).sub(d2.mul(5f)).intoArray(dst, d + 2 * ds);
        FloatVector a = d1.sub(d3);
        FloatVector b = d2.sub(d4);
        a.mul(2f).add(b).intoArray(dst, d + 3 * ds);
        a.sub(b.mul(2f)).intoArray(dst, d + 4 * ds);
        d1.add(d5).mul(2f).add(d4.sub(d2).mul(3f)).sub(d3.mul(4f)).intoArray(dst, d + 5 * ds);
    }

    /** r = Bᵀ d for 6 vectors d_k at src[s + k·ss], r_i stored at dst[d + i·ds]. */
    private static void inputTransform(float[] src, int s, int ss, float[] dst, int d, int ds) {
        FloatVector d0 = FloatVector.fromArray(F, src, s);
        FloatVector d1 = FloatVector.fromArray(F, src, s + ss);
        FloatVector d2 = FloatVector.fromArray(F, src, s + 2 * ss);
        FloatVector d3 = FloatVector.fromArray(F, src, s + 3 * ss);
        FloatVector d4 = FloatVector.fromArray(F, src, s + 4 * ss);
        FloatVector d5 = FloatVector.fromArray(F, src, s + 5 * ss);
        // 2d0 − 3d1 − 4d2 + 3d3 + 2d4
        d0.add(d4).mul(2f).add(d3.sub(d1).mul(3f)).sub(d2.mul(4f)).intoArray(dst, d);
        // 2d1 − d2 − 5d3 − 2d4
        d1.sub(d4).mul(2f).sub(d2).sub(d3.mul(5f)).intoArray(dst, d + ds);
        // 2d1 − 5d2 + d3 + 2d4
        d1.add(d4).mul(2f).add(d3).sub(d2.mul(5f)).intoArray(dst, d + 2 * ds);
        // 2d1 + d2 − 2d3 − d4
        FloatVector a = d1.sub(d3);
        FloatVector b = d2.sub(d4);
        a.mul(2f).add(b).intoArray(dst, d + 3 * ds);
        // d1 − 2d2 − d3 + 2d4
        a.sub(b.mul(2f)).intoArray(dst, d + 4 * ds);
        // 2d1 − 3d2 − 4d3 + 3d4 + 2d5
        d1.add(d5).mul(2f).add(d4.sub(d2).mul(3f)).sub(d3.mul(4f)).intoArray(dst, d + 5 * ds);
    }

    /**
     * U[ξ][c][0..NR) = (G g Gᵀ)[ξ] for input channel c of the decoded slab [9 taps][kcs][NR], written
     * to u[ξ·xi + c·NR]. One vector of output channels at a time, in registers: the 9 taps, then
     * per row i of G the row t = (G g)[i] (3 vectors) and its 6 products G·t. (One method on purpose:
     * C2 does not always inline a helper taking vectors here, and then boxes them.)
     */
    private static void weightChannel(float[] slab, int c, int kcs, float[] u, int xi) {
        int tap = kcs * NR;
        FloatVector two = FloatVector.broadcast(F, 2f);
        FloatVector four = FloatVector.broadcast(F, 4f);
        FloatVector minusTwo = FloatVector.broadcast(F, -2f);
        for (int half = 0; half < NR; half += VL) {
            int s = c * NR + half;
            FloatVector g00 = FloatVector.fromArray(F, slab, s);
            FloatVector g01 = FloatVector.fromArray(F, slab, s + tap);
            FloatVector g02 = FloatVector.fromArray(F, slab, s + 2 * tap);
            FloatVector g10 = FloatVector.fromArray(F, slab, s + 3 * tap);
            FloatVector g11 = FloatVector.fromArray(F, slab, s + 4 * tap);
            FloatVector g12 = FloatVector.fromArray(F, slab, s + 5 * tap);
            FloatVector g20 = FloatVector.fromArray(F, slab, s + 6 * tap);
            FloatVector g21 = FloatVector.fromArray(F, slab, s + 7 * tap);
            FloatVector g22 = FloatVector.fromArray(F, slab, s + 8 * tap);
            for (int i = 0; i < 6; i++) {
                FloatVector t0;
                FloatVector t1;
                FloatVector t2;
                switch (i) {
                    case 0 -> {                                   // g0
                        t0 = g00;
                        t1 = g01;
                        t2 = g02;
                    }
                    case 1 -> {                                   // g0 + g1 + g2
                        t0 = g00.add(g20).add(g10);
                        t1 = g01.add(g21).add(g11);
                        t2 = g02.add(g22).add(g12);
                    }
                    case 2 -> {                                   // g0 − g1 + g2
                        t0 = g00.add(g20).sub(g10);
                        t1 = g01.add(g21).sub(g11);
                        t2 = g02.add(g22).sub(g12);
                    }
                    case 3 -> {                                   // 4g0 + 2g1 + g2
                        t0 = g00.fma(four, g10.fma(two, g20));
                        t1 = g01.fma(four, g11.fma(two, g21));
                        t2 = g02.fma(four, g12.fma(two, g22));
                    }
                    case 4 -> {                                   // g0 − 2g1 + 4g2
                        t0 = g20.fma(four, g10.fma(minusTwo, g00));
                        t1 = g21.fma(four, g11.fma(minusTwo, g01));
                        t2 = g22.fma(four, g12.fma(minusTwo, g02));
                    }
                    default -> {                                  // g2
                        t0 = g20;
                        t1 = g21;
                        t2 = g22;
                    }
                }
                int d = 6 * i * xi + c * NR + half;
                FloatVector e = t0.add(t2);
                t0.intoArray(u, d);
                e.add(t1).intoArray(u, d + xi);
                e.sub(t1).intoArray(u, d + 2 * xi);
                t0.fma(four, t1.fma(two, t2)).intoArray(u, d + 3 * xi);
                t2.fma(four, t1.fma(minusTwo, t0)).intoArray(u, d + 4 * xi);
                t2.intoArray(u, d + 5 * xi);
            }
        }
    }

    /**
     * M[4 tiles][NR] (+)= V[4 tiles][kc] · U[kc][NR] for one position: v[v0 + p·kcv + k] is tile p's
     * channel k, u[u0 + k·NR ..] the weights, m[m0 + p·NR ..] the accumulators (overwritten when first).
     */
    private static void kernel(float[] v, int v0, int kcv, float[] u, int u0, int kc, float[] m, int m0,
            boolean first) {
        FloatVector c00 = FloatVector.zero(F);
        FloatVector c01 = c00;
        FloatVector c10 = c00;
        FloatVector c11 = c00;
        FloatVector c20 = c00;
        FloatVector c21 = c00;
        FloatVector c30 = c00;
        FloatVector c31 = c00;
        int v1 = v0 + kcv;
        int v2 = v0 + 2 * kcv;
        int v3 = v0 + 3 * kcv;
        for (int k = 0; k < kc; k++) {
            int uk = u0 + k * NR;
            FloatVector w0 = FloatVector.fromArray(F, u, uk);
            FloatVector w1 = FloatVector.fromArray(F, u, uk + VL);
            FloatVector b = FloatVector.broadcast(F, v[v0 + k]);
            c00 = b.fma(w0, c00);
            c01 = b.fma(w1, c01);
            b = FloatVector.broadcast(F, v[v1 + k]);
            c10 = b.fma(w0, c10);
            c11 = b.fma(w1, c11);
            b = FloatVector.broadcast(F, v[v2 + k]);
            c20 = b.fma(w0, c20);
            c21 = b.fma(w1, c21);
            b = FloatVector.broadcast(F, v[v3 + k]);
            c30 = b.fma(w0, c30);
            c31 = b.fma(w1, c31);
        }
        if (!first) {
            c00 = c00.add(FloatVector.fromArray(F, m, m0));
            c01 = c01.add(FloatVector.fromArray(F, m, m0 + VL));
            c10 = c10.add(FloatVector.fromArray(F, m, m0 + NR));
            c11 = c11.add(FloatVector.fromArray(F, m, m0 + NR + VL));
            c20 = c20.add(FloatVector.fromArray(F, m, m0 + 2 * NR));
            c21 = c21.add(FloatVector.fromArray(F, m, m0 + 2 * NR + VL));
            c30 = c30.add(FloatVector.fromArray(F, m, m0 + 3 * NR));
            c31 = c31.add(FloatVector.fromArray(F, m, m0 + 3 * NR + VL));
        }
        c00.intoArray(m, m0);
        c01.intoArray(m, m0 + VL);
        c10.intoArray(m, m0 + NR);
        c11.intoArray(m, m0 + NR + VL);
        c20.intoArray(m, m0 + 2 * NR);
        c21.intoArray(m, m0 + 2 * NR + VL);
        c30.intoArray(m, m0 + 3 * NR);
        c31.intoArray(m, m0 + 3 * NR + VL);
    }

    /**
     * out = Aᵀ M A + bias for one tile: M[ξ] of its NR channels at m[m0 + ξ·xiStride ..]; writes the
     * tile's pixels inside the output and its ocValid real channels.
     */
    private static void outputTile(float[] m, int m0, int xiStride, float[] bias, int biasOff, int ocValid,
            MemorySegment os, int tile, int tilesPerImage, int tilesW, int oh, int ow, int oc, float[] tmp,
            float[] y) {
        int n = tile / tilesPerImage;
        int oy0 = tile % tilesPerImage / tilesW * 4;
        int ox0 = tile % tilesW * 4;
        int rows = Math.min(4, oh - oy0);
        int cols = Math.min(4, ow - ox0);
        boolean whole = rows == 4 && cols == 4;
        long pixBytes = (long) oc * 4;
        for (int half = 0; half < NR && half < ocValid; half += VL) {
            // Aᵀ M down each column j (ξ = 6i + j): tmp[r][j]; then (Aᵀ M) A + bias along each row r,
            // stored straight to the output for a whole tile, else through y.
            for (int j = 0; j < 6; j++) {
                outputTransform(m, m0 + j * xiStride + half, 6 * xiStride, tmp, j * VL, 6 * VL);
            }
            int lanes = Math.min(VL, ocValid - half);     // < VL only in a ragged last block
            long at = ((((long) n * oh + oy0) * ow + ox0) * oc + biasOff + half) * 4;
            if (whole && lanes == VL) {
                for (int r = 0; r < 4; r++) {
                    outputRow(tmp, r * 6 * VL, bias, biasOff + half, os, at + r * ow * pixBytes, pixBytes);
                }
                continue;
            }
            for (int r = 0; r < 4; r++) {
                outputTransform(tmp, r * 6 * VL, VL, y, r * 4 * VL, VL);
            }
            FloatVector b = FloatVector.fromArray(F, bias, biasOff + half);
            for (int r = 0; r < rows; r++) {
                for (int c = 0; c < cols; c++) {
                    long off = at + (r * ow + c) * pixBytes;
                    FloatVector o = FloatVector.fromArray(F, y, (r * 4 + c) * VL).add(b);
                    if (lanes == VL) {
                        o.intoMemorySegment(os, off, NATIVE);
                    } else {
                        o.intoArray(y, (r * 4 + c) * VL);
                        MemorySegment.copy(y, (r * 4 + c) * VL, os, FL, off, lanes);
                    }
                }
            }
        }
    }

    private static final float SIXTH = -1f / 6f;
    private static final float THIRTIETH = 1f / 30f;

    /** r = Aᵀ m for 6 vectors m_k at src[s + k·ss], r_i (4) stored at dst[d + i·ds]. */
    private static void outputTransform(float[] src, int s, int ss, float[] dst, int d, int ds) {
        FloatVector m0 = FloatVector.fromArray(F, src, s);
        FloatVector m1 = FloatVector.fromArray(F, src, s + ss);
        FloatVector m2 = FloatVector.fromArray(F, src, s + 2 * ss);
        FloatVector m3 = FloatVector.fromArray(F, src, s + 3 * ss);
        FloatVector m4 = FloatVector.fromArray(F, src, s + 4 * ss);
        FloatVector m5 = FloatVector.fromArray(F, src, s + 5 * ss);
        FloatVector p = m1.add(m2).mul(SIXTH);            // −(m1 + m2)/6
        FloatVector q = m1.sub(m2).mul(SIXTH);            // −(m1 − m2)/6
        FloatVector e = m3.mul(THIRTIETH);
        FloatVector f = m4.mul(THIRTIETH);
        // ½m0 − ⅙(m1 + m2) + 4/15 m3 + 1/30 m4
        m0.mul(0.5f).add(p).add(e.mul(8f)).add(f).intoArray(dst, d);
        // −⅙(m1 − m2) + 2/15 m3 − 1/15 m4
        q.add(e.mul(4f)).sub(f.mul(2f)).intoArray(dst, d + ds);
        // −⅙(m1 + m2) + 1/15 m3 + 2/15 m4
        p.add(e.mul(2f)).add(f.mul(4f)).intoArray(dst, d + 2 * ds);
        // −⅙(m1 − m2) + 1/30 m3 − 4/15 m4 + ½m5
        q.add(e).sub(f.mul(8f)).add(m5.mul(0.5f)).intoArray(dst, d + 3 * ds);
    }

    /**
     * As {@link #outputTransform} for one row of a whole tile, plus the bias bias[b0 ..], stored as the
     * 4 output pixels at byte {@code at + c·pixBytes}. (Arithmetic repeated rather than shared through a
     * method taking vectors, which C2 might not inline.)
     */
    private static void outputRow(float[] src, int s, float[] bias, int b0, MemorySegment os, long at, long pixBytes) {
        FloatVector m0 = FloatVector.fromArray(F, src, s);
        FloatVector m1 = FloatVector.fromArray(F, src, s + VL);
        FloatVector m2 = FloatVector.fromArray(F, src, s + 2 * VL);
        FloatVector m3 = FloatVector.fromArray(F, src, s + 3 * VL);
        FloatVector m4 = FloatVector.fromArray(F, src, s + 4 * VL);
        FloatVector m5 = FloatVector.fromArray(F, src, s + 5 * VL);
        FloatVector b = FloatVector.fromArray(F, bias, b0);
        FloatVector p = m1.add(m2).mul(SIXTH);
        FloatVector q = m1.sub(m2).mul(SIXTH);
        FloatVector e = m3.mul(THIRTIETH);
        FloatVector f = m4.mul(THIRTIETH);
        m0.mul(0.5f).add(p).add(e.mul(8f)).add(f).add(b).intoMemorySegment(os, at, NATIVE);
        q.add(e.mul(4f)).sub(f.mul(2f)).add(b).intoMemorySegment(os, at + pixBytes, NATIVE);
        p.add(e.mul(2f)).add(f.mul(4f)).add(b).intoMemorySegment(os, at + 2 * pixBytes, NATIVE);
        q.add(e).sub(f.mul(8f)).add(m5.mul(0.5f)).add(b).intoMemorySegment(os, at + 3 * pixBytes, NATIVE);
    }

    private static int roundUp(int v, int m) {
        return (v + m - 1) / m * m;
    }
}
