package dev.marble.runtime.unet;

import dev.marble.runtime.nn.LayerNormLayer;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * diffusers {@code BasicTransformerBlock} (norm_type "layer_norm", self-attention then cross-attention):
 * x += attn1(norm1(x)); x += attn2(norm2(x), ctx); x += ff(norm3(x)).
 */
final class BasicTransformerBlock {
    /** diffusers' BasicTransformerBlock default norm_eps; the UNet does not pass its own. */
    private static final float LAYER_NORM_EPS = 1e-5f;

    private final LayerNormLayer norm1; // [D]
    private final CrossAttention attn1; // self
    private final LayerNormLayer norm2; // [D]
    private final CrossAttention attn2; // to the text context
    private final LayerNormLayer norm3; // [D]
    private final FeedForward ff;

    private BasicTransformerBlock(LayerNormLayer norm1, CrossAttention attn1, LayerNormLayer norm2,
            CrossAttention attn2, LayerNormLayer norm3, FeedForward ff) {
        this.norm1 = norm1;
        this.attn1 = attn1;
        this.norm2 = norm2;
        this.attn2 = attn2;
        this.norm3 = norm3;
        this.ff = ff;
    }

    static BasicTransformerBlock load(WeightScope w, int dim, int heads, int headDim, int crossAttentionDim,
            Arena arena) {
        return new BasicTransformerBlock(
                LayerNormLayer.load(w.at("norm1"), dim, LAYER_NORM_EPS, arena),
                CrossAttention.load(w.at("attn1"), dim, dim, heads, headDim, arena),
                LayerNormLayer.load(w.at("norm2"), dim, LAYER_NORM_EPS, arena),
                CrossAttention.load(w.at("attn2"), dim, crossAttentionDim, heads, headDim, arena),
                LayerNormLayer.load(w.at("norm3"), dim, LAYER_NORM_EPS, arena),
                FeedForward.load(w.at("ff"), dim, arena));
    }

    int contextDim() {
        return attn2.contextDim();
    }

    /**
     * Updates tokens x [B, L, D] in place; ctx [B, Lk, Dctx]. Each normed copy of x is given back as
     * soon as it is projected, so that it is not live during the attention.
     */
    void forward(Workspace ws, Tensor x, Tensor ctx) {
        // 1. self-attention
        Tensor n = ws.take(DType.F32, x.shape()); // [B, L, D]
        norm1.forward(x, n);
        Tensor a = attn1.forwardAndGive(ws, n, null); // [B, L, D]
        Elementwise.add(x, a, x);
        ws.give(a);
        // 2. cross-attention to the text context
        n = ws.take(DType.F32, x.shape()); // [B, L, D]
        norm2.forward(x, n);
        a = attn2.forwardAndGive(ws, n, ctx); // [B, L, D]
        Elementwise.add(x, a, x);
        ws.give(a);
        // 3. GEGLU feed-forward
        n = ws.take(DType.F32, x.shape()); // [B, L, D]
        norm3.forward(x, n);
        a = ff.forward(ws, n); // [B, L, D]
        ws.give(n);
        Elementwise.add(x, a, x);
        ws.give(a);
    }
}
