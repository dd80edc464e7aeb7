package dev.marble.tensors.kernels;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The scalar twins of {@link Norm}. Statistics accumulate in double: VAE groups hold millions of values. */
final class NormScalar {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private NormScalar() {
    }

    static void groupNorm(Tensor x, Tensor gamma, Tensor beta, int groups, float eps, boolean silu, Tensor out) {
        int b = x.size(0);
        int l = x.size(1);
        int c = x.size(2);
        int cg = c / groups;
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        float[] g = gamma.toFloatArray();
        float[] be = beta.toFloatArray();
        Parallel.forChunks(b * groups, (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                int bi = r / groups;
                int c0 = (r % groups) * cg;
                double sum = 0;
                double sq = 0;
                for (int p = 0; p < l; p++) {
                    long base = ((long) bi * l + p) * c + c0;
                    for (int j = 0; j < cg; j++) {
                        double v = xs.getAtIndex(F, base + j);
                        sum += v;
                        sq += v * v;
                    }
                }
                double count = (double) l * cg;
                double mean = sum / count;
                double var = Math.max(0, sq / count - mean * mean);
                float inv = (float) (1.0 / Math.sqrt(var + eps));
                float m = (float) mean;
                for (int p = 0; p < l; p++) {
                    long base = ((long) bi * l + p) * c + c0;
                    for (int j = 0; j < cg; j++) {
                        float y = (xs.getAtIndex(F, base + j) - m) * inv * g[c0 + j] + be[c0 + j];
                        os.setAtIndex(F, base + j, silu ? ActivationScalar.silu(y) : y);
                    }
                }
            }
        });
    }

    static void layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor out) {
        int rows = x.size(0);
        int c = x.size(1);
        MemorySegment xs = x.data();
        MemorySegment os = out.data();
        float[] g = gamma.toFloatArray();
        float[] be = beta.toFloatArray();
        Parallel.forChunks(rows, (chunk, r0, r1) -> {
            for (int r = r0; r < r1; r++) {
                long base = (long) r * c;
                double sum = 0;
                for (int j = 0; j < c; j++) {
                    sum += xs.getAtIndex(F, base + j);
                }
                double mean = sum / c;
                double var = 0;
                for (int j = 0; j < c; j++) {
                    double d = xs.getAtIndex(F, base + j) - mean;
                    var += d * d;
                }
                var /= c;
                float inv = (float) (1.0 / Math.sqrt(var + eps));
                float m = (float) mean;
                for (int j = 0; j < c; j++) {
                    os.setAtIndex(F, base + j, (xs.getAtIndex(F, base + j) - m) * inv * g[j] + be[j]);
                }
            }
        });
    }
}
