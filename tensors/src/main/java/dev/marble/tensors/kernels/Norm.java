package dev.marble.tensors.kernels;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;

/** Normalizations over channels-last activations. gamma and beta are F32 [C]. */
public final class Norm {
    private Norm() {
    }

    /**
     * GroupNorm of x [B, L, C] (L = H·W positions; rank 4 [B, H, W, C] is accepted and flattened) into
     * out (same shape; may be x). Statistics per (batch, group) over L × C/groups values, biased
     * variance, as torch.nn.GroupNorm. {@code silu} fuses a SiLU after the affine step.
     */
    public static void groupNorm(Tensor x, Tensor gamma, Tensor beta, int groups, float eps, boolean silu, Tensor out) {
        int b = x.size(0);
        int c = x.size(-1);
        if (groups < 1 || c % groups != 0) {
            throw new MarbleException("group norm: " + c + " channels do not split into " + groups + " groups");
        }
        if ((long) b * c == 0) {
            throw new MarbleException("group norm: empty batch or channel dimension in " + x);
        }
        int l = Math.toIntExact(x.numel() / ((long) b * c));
        Tensor x3 = x.reshape(b, l, c);
        Tensor o3 = out.reshape(-1);
        Checks.f32("group norm input", x3, b, l, c);
        Checks.f32("group norm output", o3, (long) b * l * c);
        Checks.f32("group norm gamma", gamma, c);
        Checks.f32("group norm beta", beta, c);
        if (Simd.ENABLED) {
            NormSimd.groupNorm(x3, gamma, beta, groups, eps, silu, out.reshape(b, l, c));
        } else {
            NormScalar.groupNorm(x3, gamma, beta, groups, eps, silu, out.reshape(b, l, c));
        }
    }

    /** LayerNorm over the last dimension of x [..., C] into out (same shape; may be x). Biased variance. */
    public static void layerNorm(Tensor x, Tensor gamma, Tensor beta, float eps, Tensor out) {
        int c = x.size(-1);
        if (c == 0) {
            throw new MarbleException("layer norm: the last dimension of " + x + " is empty");
        }
        int rows = Math.toIntExact(x.numel() / c);
        Checks.f32("layer norm input", x.reshape(rows, c), rows, c);
        Checks.f32("layer norm output", out.reshape(-1), (long) rows * c);
        Checks.f32("layer norm gamma", gamma, c);
        Checks.f32("layer norm beta", beta, c);
        if (Simd.ENABLED) {
            NormSimd.layerNorm(x.reshape(rows, c), gamma, beta, eps, out.reshape(rows, c));
        } else {
            NormScalar.layerNorm(x.reshape(rows, c), gamma, beta, eps, out.reshape(rows, c));
        }
    }
}
