package dev.marble.tensors.kernels;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The scalar twin of {@link Gemm}: the test oracle. Accumulates each output in float, K in order. */
final class GemmScalar {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private GemmScalar() {
    }

    static void matmul(Tensor a, PackedMatrix b, Tensor bias, Tensor c, int m) {
        int k = b.k();
        int n = b.n();
        MemorySegment as = a.data();
        MemorySegment cs = c.data();
        MemorySegment bs = bias == null ? null : bias.data();
        Parallel.forChunks(n, (chunk, n0, n1) -> {
            float[] col = new float[k];
            for (int j = n0; j < n1; j++) {
                for (int kk = 0; kk < k; kk++) {
                    col[kk] = b.get(kk, j);
                }
                float bj = bs == null ? 0f : bs.getAtIndex(F, j);
                for (int i = 0; i < m; i++) {
                    long row = (long) i * k;
                    float acc = 0f;
                    for (int kk = 0; kk < k; kk++) {
                        acc += as.getAtIndex(F, row + kk) * col[kk];
                    }
                    cs.setAtIndex(F, (long) i * n + j, acc + bj);
                }
            }
        });
    }
}
