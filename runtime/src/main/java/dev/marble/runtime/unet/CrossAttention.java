package dev.marble.runtime.unet;

import dev.marble.runtime.nn.Linear;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Attention;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * diffusers {@code Attention} with the default processor (named after its older name CrossAttention to
 * keep it apart from the kernel): q = to_q(x), k = to_k(ctx), v = to_v(ctx) without bias, multi-head
 * softmax(q·kᵀ / √d)·v, then to_out.0 (with bias). Self-attention when ctx is x (passed as null).
 */
final class CrossAttention {
    private final Linear to_q; // [inner, D]
    private final Linear to_k; // [inner, Dctx]
    private final Linear to_v; // [inner, Dctx]
    private final Linear to_out; // to_out.0: [D, inner]
    private final int heads;
    private final float scale;

    private CrossAttention(Linear to_q, Linear to_k, Linear to_v, Linear to_out, int heads, float scale) {
        this.to_q = to_q;
        this.to_k = to_k;
        this.to_v = to_v;
        this.to_out = to_out;
        this.heads = heads;
        this.scale = scale;
    }

    static CrossAttention load(WeightScope w, int queryDim, int contextDim, int heads, int headDim, Arena arena) {
        int inner = heads * headDim;
        return new CrossAttention(
                Linear.loadMatrix(w.at("to_q"), queryDim, inner, false, arena),
                Linear.loadMatrix(w.at("to_k"), contextDim, inner, false, arena),
                Linear.loadMatrix(w.at("to_v"), contextDim, inner, false, arena),
                Linear.loadMatrix(w.at("to_out").at(0), inner, queryDim, true, arena),
                heads,
                (float) (1.0 / Math.sqrt(headDim))); // diffusers: dim_head ** -0.5
    }

    /** Width of the context this layer attends to. */
    int contextDim() {
        return to_k.inFeatures();
    }

    /**
     * x [B, L, D], ctx [B, Lk, Dctx] (null for self-attention: ctx is x) → a new workspace tensor
     * [B, L, D]. x is given back to {@code ws} as soon as it is projected; ctx is left to the caller.
     */
    Tensor forwardAndGive(Workspace ws, Tensor x, Tensor ctx) {
        // 1. projections; the attention then overwrites q with its output, query row by query row
        Tensor q = to_q.forward(ws, x); // [B, L, inner]
        Tensor k = to_k.forward(ws, ctx == null ? x : ctx); // [B, Lk, inner]
        Tensor v = to_v.forward(ws, ctx == null ? x : ctx); // [B, Lk, inner]
        ws.give(x);
        // 2. multi-head attention, in place of q
        Attention.forward(q, k, v, heads, scale, false, q);
        ws.give(v);
        ws.give(k);
        // 3. output projection
        Tensor out = to_out.forward(ws, q); // [B, L, D]
        ws.give(q);
        return out;
    }
}
