package dev.marble.runtime.vae;

import dev.marble.runtime.nn.GroupNormLayer;
import dev.marble.runtime.nn.Linear;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.tensors.kernels.Attention;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * The VAE mid-block self-attention: diffusers Attention built with group norm, a residual connection
 * and one head (the Encoder and Decoder pass attention_head_dim = channels), i.e. the former
 * AttentionBlock. Every pixel attends to every pixel: H·W tokens of C channels.
 * Keys: group_norm, to_q, to_k, to_v, to_out.0; checkpoints from diffusers before 0.14 name the
 * projections query, key, value and proj_attn instead.
 */
final class AttentionBlock {
    private final GroupNormLayer groupNorm; // [C]
    private final Linear toQ;               // [C, C]
    private final Linear toK;               // [C, C]
    private final Linear toV;               // [C, C]
    private final Linear toOut;             // [C, C] (to_out.0; to_out.1 is dropout)
    private final float scale;

    private AttentionBlock(GroupNormLayer groupNorm, Linear toQ, Linear toK, Linear toV, Linear toOut, float scale) {
        this.groupNorm = groupNorm;
        this.toQ = toQ;
        this.toK = toK;
        this.toV = toV;
        this.toOut = toOut;
        this.scale = scale;
    }

    static AttentionBlock load(AutoencoderKLConfig c, WeightScope w, int channels, Arena arena) {
        boolean legacy = !w.hasScope("to_q") && w.hasScope("query");
        return new AttentionBlock(
                GroupNormLayer.load(w.at("group_norm"), channels, c.normNumGroups(), AutoencoderKL.NORM_EPS, arena),
                Linear.load(w.at(legacy ? "query" : "to_q"), channels, channels, true, arena),
                Linear.load(w.at(legacy ? "key" : "to_k"), channels, channels, true, arena),
                Linear.load(w.at(legacy ? "value" : "to_v"), channels, channels, true, arena),
                Linear.load(legacy ? w.at("proj_attn") : w.at("to_out").at(0), channels, channels, true, arena),
                (float) (1.0 / Math.sqrt(channels)));
    }

    /** x [B, H, W, C] → [B, H, W, C]; x is given back to {@code ws}. */
    Tensor forward(Workspace ws, Tensor x) {
        long[] shape = x.shape();
        int b = x.size(0);
        int c = x.size(3);
        Tensor tokens = x.reshape(b, -1, c); // [B, L, C], L = H·W
        // 1. group norm, projections
        Tensor n = groupNorm.forward(ws, tokens, Activation.Kind.IDENTITY); // [B, L, C]
        Tensor q = toQ.forward(ws, n); // [B, L, C]
        Tensor k = toK.forward(ws, n); // [B, L, C]
        Tensor v = toV.forward(ws, n); // [B, L, C]
        ws.give(n);
        // 2. single-head softmax(q·kᵀ / √C) · v, in place of q
        Attention.forward(q, k, v, 1, scale, false, q);
        ws.give(k);
        ws.give(v);
        // 3. output projection and residual (rescale_output_factor is 1)
        Tensor out = toOut.forward(ws, q); // [B, L, C]
        ws.give(q);
        Elementwise.add(out, tokens, out);
        ws.give(x);
        return out.reshape(shape);
    }
}
