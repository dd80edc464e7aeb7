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
 * The SIMD forms of {@link Norm}.
 *
 * <p>GroupNorm on channels-last data: a group's C/G channels are contiguous but short (4..40), so
 * the statistics are gathered per CHANNEL with vectors across the row of C channels, then summed
 * per group. Pass 1 walks blocks of up to 64 positions with float accumulators of x - k (k = the
 * channel's value at position 0: the shift keeps Σ(x - k)² free of cancellation when the mean is
 * large against the spread), and adds each block's sums into per-channel doubles; the blocks split
 * across the threads even at batch 1. Pass 2 folds channels into group mean and variance (biased,
 * as torch), and pass 3 writes (x - mean)·(γ·rstd) + β, optionally through SiLU.
 */
final class NormSimd {
    private static final VectorSpecies<Float> S = Simd.FLOAT;
    private static final int VL = S.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Positions per float block before the block sums move into doubles. */
    private static final int BLOCK = 64;

    private NormSimd() {
    }

    static void groupNorm(Tensor x, Tensor gamma, Tensor beta, int groups, float eps, boolean silu, Tensor out) {
        int b = x.size(0);
        int l = x.size(1);
        int c = x.size(2);
        int cg = c / groups;
        if (b == 0 || l == 0 || c == 0) {
            return;
        }
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        float[] g = gamma.toFloatArray();
        float[] be = beta.toFloatArray();
        // 1. Per-channel shifted sums, per batch, partial per chunk.
        float[] shift = new float[b * c];
        for (int bi = 0; bi < b; bi++) {
            MemorySegment.copy(xs, F, (long) bi * l * c * 4L, shift, bi * c, c);
        }
        int blocks = (l + BLOCK - 1) / BLOCK;
        int items = b * blocks;
        int parts = Math.max(1, Math.min(Parallel.threads(), items));
        double[][] sums = new double[parts][];
        double[][] squares = new double[parts][];
        Parallel.forChunks(items, Math.max(1, (items + parts - 1) / parts), (chunk, i0, i1) -> {
            double[] s = new double[b * c];
            double[] q = new double[b * c];
            float[] bs = new float[c];
            float[] bq = new float[c];
            for (int it = i0; it < i1; it++) {
                int bi = it / blocks;
                int p0 = (it % blocks) * BLOCK;
                int p1 = Math.min(l, p0 + BLOCK);
                blockSums(xs, ((long) bi * l + p0) * c, p1 - p0, c, shift, bi * c, bs, bq);
                for (int ch = 0; ch < c; ch++) {
                    s[bi * c + ch] += bs[ch];
                    q[bi * c + ch] += bq[ch];
                }
            }
            sums[chunk] = s;
            squares[chunk] = q;
        });
        // 2. Group statistics → per-channel mean, scale γ·rstd and β.
        float[] mean = new float[b * c];
        float[] scale = new float[b * c];
        double count = (double) l * cg;
        for (int bi = 0; bi < b; bi++) {
            for (int gi = 0; gi < groups; gi++) {
                double sx = 0;
                double sxx = 0;
                for (int ch = gi * cg; ch < (gi + 1) * cg; ch++) {
                    int at = bi * c + ch;
                    double s = 0;
                    double q = 0;
                    for (int p = 0; p < parts; p++) {
                        if (sums[p] != null) {
                            s += sums[p][at];
                            q += squares[p][at];
                        }
                    }
                    double k = shift[at];
                    sx += s + l * k;
                    sxx += q + 2 * k * s + l * k * k;
                }
                double m = sx / count;
                double var = Math.max(0, sxx / count - m * m);
                double rstd = 1 / Math.sqrt(var + eps);
                for (int ch = gi * cg; ch < (gi + 1) * cg; ch++) {
                    mean[bi * c + ch] = (float) m;
                    scale[bi * c + ch] = (float) (g[ch] * rstd);
                }
            }
        }
        // 3. Normalize rows.
        Parallel.forChunks(b * l, Math.max(1, 4096 / Math.max(1, c)), (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int bi = r / l;
                long base = (long) r * c;
                if (silu) {
                    affineSiluRow(xs, os, base, c, mean, scale, bi * c, be);
                } else {
                    affineRow(xs, os, base, c, mean, scale, bi * c, be);
                }
            }
        });
    }

    /** Σ(x - k) and Σ(x - k)² per channel over n positions starting at element base. */
    private static void blockSums(MemorySegment xs, long base, int n, int c, float[] shift, int so, float[] bs,
            float[] bq) {
        int end = c / VL * VL;
        for (int ch = 0; ch < end; ch += VL) {
            FloatVector k = FloatVector.fromArray(S, shift, so + ch);
            FloatVector s = FloatVector.zero(S);
            FloatVector q = FloatVector.zero(S);
            for (int p = 0; p < n; p++) {
                FloatVector v = FloatVector.fromMemorySegment(S, xs, (base + (long) p * c + ch) * 4L, LE).sub(k);
                s = s.add(v);
                q = v.fma(v, q);
            }
            s.intoArray(bs, ch);
            q.intoArray(bq, ch);
        }
        for (int ch = end; ch < c; ch++) {
            float k = shift[so + ch];
            float s = 0;
            float q = 0;
            for (int p = 0; p < n; p++) {
                float v = xs.getAtIndex(F, base + (long) p * c + ch) - k;
                s += v;
                q += v * v;
            }
            bs[ch] = s;
            bq[ch] = q;
        }
    }

    private static void affineRow(MemorySegment xs, MemorySegment os, long base, int c, float[] mean, float[] scale,
            int mo, float[] beta) {
        int end = c / VL * VL;
        for (int ch = 0; ch < end; ch += VL) {
            FloatVector v = FloatVector.fromMemorySegment(S, xs, (base + ch) * 4L, LE)
                    .sub(FloatVector.fromArray(S, mean, mo + ch));
            v.fma(FloatVector.fromArray(S, scale, mo + ch), FloatVector.fromArray(S, beta, ch))
                    .intoMemorySegment(os, (base + ch) * 4L, LE);
        }
        for (int ch = end; ch < c; ch++) {
            os.setAtIndex(F, base + ch, (xs.getAtIndex(F, base + ch) - mean[mo + ch]) * scale[mo + ch] + beta[ch]);
        }
    }

    private static void affineSiluRow(MemorySegment xs, MemorySegment os, long base, int c, float[] mean,
            float[] scale, int mo, float[] beta) {
        int end = c / VL * VL;
        for (int ch = 0; ch < end; ch += VL) {
            FloatVector v = FloatVector.fromMemorySegment(S, xs, (base + ch) * 4L, LE)
                    .sub(FloatVector.fromArray(S, mean, mo + ch));
            FloatVector y = v.fma(FloatVector.fromArray(S, scale, mo + ch), FloatVector.fromArray(S, beta, ch));
            ActivationMath.xSigmoid(y, y).intoMemorySegment(os, (base + ch) * 4L, LE);
        }
        for (int ch = end; ch < c; ch++) {
            float y = (xs.getAtIndex(F, base + ch) - mean[mo + ch]) * scale[mo + ch] + beta[ch];
            os.setAtIndex(F, base + ch, ActivationScalar.silu(y));
        }
    }

    /** LayerNorm rows: vector mean, then Σ(x - mean)² (two passes, no cancellation), then the affine map. */
    static void layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor out) {
        int rows = x.size(0);
        int c = x.size(1);
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        float[] g = gamma.toFloatArray();
        float[] be = beta.toFloatArray();
        int end = c / VL * VL;
        Parallel.forChunks(rows, Math.max(1, 4096 / Math.max(1, c)), (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long base = (long) r * c;
                double sum = rowSum(xs, base, end);
                for (int j = end; j < c; j++) {
                    sum += xs.getAtIndex(F, base + j);
                }
                float mean = (float) (sum / c);
                double var = rowSquares(xs, base, end, mean);
                for (int j = end; j < c; j++) {
                    double d = xs.getAtIndex(F, base + j) - mean;
                    var += d * d;
                }
                float rstd = (float) (1 / Math.sqrt(var / c + eps));
                layerRow(xs, os, base, c, end, mean, rstd, g, be);
            }
        });
    }

    private static double rowSum(MemorySegment xs, long base, int end) {
        FloatVector a = FloatVector.zero(S);
        FloatVector b = FloatVector.zero(S);
        int j = 0;
        for (; j + 2 * VL <= end; j += 2 * VL) {
            a = a.add(FloatVector.fromMemorySegment(S, xs, (base + j) * 4L, LE));
            b = b.add(FloatVector.fromMemorySegment(S, xs, (base + j + VL) * 4L, LE));
        }
        if (j < end) {
            a = a.add(FloatVector.fromMemorySegment(S, xs, (base + j) * 4L, LE));
        }
        return (double) Lanes.sum(a) + Lanes.sum(b);
    }

    private static double rowSquares(MemorySegment xs, long base, int end, float mean) {
        FloatVector a = FloatVector.zero(S);
        FloatVector b = FloatVector.zero(S);
        int j = 0;
        for (; j + 2 * VL <= end; j += 2 * VL) {
            FloatVector u = FloatVector.fromMemorySegment(S, xs, (base + j) * 4L, LE).sub(mean);
            FloatVector w = FloatVector.fromMemorySegment(S, xs, (base + j + VL) * 4L, LE).sub(mean);
            a = u.fma(u, a);
            b = w.fma(w, b);
        }
        if (j < end) {
            FloatVector u = FloatVector.fromMemorySegment(S, xs, (base + j) * 4L, LE).sub(mean);
            a = u.fma(u, a);
        }
        return (double) Lanes.sum(a) + Lanes.sum(b);
    }

    private static void layerRow(MemorySegment xs, MemorySegment os, long base, int c, int end, float mean,
            float rstd, float[] g, float[] be) {
        for (int j = 0; j < end; j += VL) {
            FloatVector u = FloatVector.fromMemorySegment(S, xs, (base + j) * 4L, LE).sub(mean).mul(rstd);
            u.fma(FloatVector.fromArray(S, g, j), FloatVector.fromArray(S, be, j))
                    .intoMemorySegment(os, (base + j) * 4L, LE);
        }
        for (int j = end; j < c; j++) {
            os.setAtIndex(F, base + j, (xs.getAtIndex(F, base + j) - mean) * rstd * g[j] + be[j]);
        }
    }
}
