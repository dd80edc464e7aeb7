package dev.marble.tensors.kernels;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;

/**
 * Multi-head scaled-dot-product attention on token-major tensors: q [B, Lq, H·D], k and v
 * [B, Lk, H·D] → out [B, Lq, H·D], out = softmax(q·kᵀ·scale (+ causal mask)) · v per head.
 * Heads are contiguous D-wide column groups, as a Linear projection produces them. out may be q
 * itself (both kernels read a query's columns of one head before they write its output there, and
 * nothing else reads them), which saves a buffer of q's size; it must not overlap k or v.
 */
public final class Attention {
    private Attention() {
    }

    public static void forward(Tensor q, Tensor k, Tensor v, int heads, float scale, boolean causal, Tensor out) {
        if (q.rank() != 3 || k.rank() != 3 || v.rank() != 3) {
            throw new MarbleException("attention: q, k, v must be [B, L, H*D], got " + q + ", " + k + ", " + v);
        }
        int b = q.size(0);
        int lq = q.size(1);
        int lk = k.size(1);
        int c = q.size(2);
        if (heads < 1 || c % heads != 0) {
            throw new MarbleException("attention: " + c + " channels do not split into " + heads + " heads");
        }
        Checks.f32("attention q", q, b, lq, c);
        Checks.f32("attention k", k, b, lk, c);
        Checks.f32("attention v", v, b, lk, c);
        Checks.f32("attention out", out, b, lq, c);
        if (lk == 0) {
            throw new MarbleException("attention: k and v have no tokens");
        }
        if (causal && lq != lk) {
            throw new MarbleException("attention: a causal mask needs equal query and key lengths");
        }
        // Q·Kᵀ and P·V: 2 multiply-adds per (query, key, channel); causal masks skip about half.
        Flops.add((causal ? 2L : 4L) * b * lq * lk * c);
        if (Simd.ENABLED) {
            AttentionSimd.forward(q, k, v, heads, scale, causal, out);
        } else {
            AttentionScalar.forward(q, k, v, heads, scale, causal, out);
        }
    }
}
