package dev.marble.runtime.clip;

import dev.marble.runtime.nn.Linear;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Attention;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** transformers CLIPAttention: multi-head self-attention with a causal mask (SD pipelines pass no padding mask). */
final class ClipAttention {
    private final Linear qProj;   // [D, D]
    private final Linear kProj;   // [D, D]
    private final Linear vProj;   // [D, D]
    private final Linear outProj; // [D, D]
    private final int heads;
    private final float scale;

    private ClipAttention(Linear qProj, Linear kProj, Linear vProj, Linear outProj, int heads, float scale) {
        this.qProj = qProj;
        this.kProj = kProj;
        this.vProj = vProj;
        this.outProj = outProj;
        this.heads = heads;
        this.scale = scale;
    }

    static ClipAttention load(ClipTextConfig c, WeightScope w, Arena arena) {
        int d = c.hiddenSize();
        return new ClipAttention(
                Linear.load(w.at("q_proj"), d, d, true, arena),
                Linear.load(w.at("k_proj"), d, d, true, arena),
                Linear.load(w.at("v_proj"), d, d, true, arena),
                Linear.load(w.at("out_proj"), d, d, true, arena),
                c.numAttentionHeads(),
                (float) (1.0 / Math.sqrt(c.headDim())));
    }

    /** x [B, L, D] → [B, L, D]; x is left to the caller. */
    Tensor forward(Workspace ws, Tensor x) {
        // 1. projections
        Tensor q = qProj.forward(ws, x); // [B, L, D]
        Tensor k = kProj.forward(ws, x); // [B, L, D]
        Tensor v = vProj.forward(ws, x); // [B, L, D]
        // 2. causal softmax(q·kᵀ / √head_dim) · v per head
        Tensor a = ws.take(DType.F32, x.shape()); // [B, L, D]
        Attention.forward(q, k, v, heads, scale, true, a);
        ws.give(q);
        ws.give(k);
        ws.give(v);
        // 3. output projection
        Tensor out = outProj.forward(ws, a); // [B, L, D]
        ws.give(a);
        return out;
    }
}
