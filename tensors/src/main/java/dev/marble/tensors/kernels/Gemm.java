package dev.marble.tensors.kernels;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;

/**
 * C [M, N] = A [M, K] · B [K, N] (+ bias [N]). A and C are F32; leading dimensions are flattened into
 * M. B stays in its weight dtype and is decoded panel by panel ({@link PackedMatrix}). The work is
 * shared by all threads in units of rows of A (or of panels of B when M is small) taken on demand;
 * called from inside a parallel region it runs on the calling thread.
 */
public final class Gemm {
    private Gemm() {
    }

    public static void matmul(Tensor a, PackedMatrix b, Tensor bias, Tensor c) {
        int k = b.k();
        int n = b.n();
        if (a.dim(-1) != k) {
            throw new MarbleException("matmul: A " + a + " does not match B [" + k + ", " + n + "]");
        }
        int m = Math.toIntExact(a.numel() / Math.max(1, k));
        Checks.f32("matmul A", a.reshape(m, k), m, k);
        Checks.f32("matmul C", c.reshape(-1, n), m, n);
        if (bias != null) {
            Checks.f32("matmul bias", bias, n);
        }
        Flops.add(2L * m * n * k);
        if (Simd.ENABLED) {
            GemmSimd.matmul(a, b, bias, c, m);
        } else {
            GemmScalar.matmul(a, b, bias, c, m);
        }
    }
}
