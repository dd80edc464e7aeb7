package dev.marble.runtime.clip;

import dev.marble.runtime.nn.LayerNormLayer;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** transformers CLIPEncoderLayer: pre-LayerNorm transformer block, h += attn(ln1(h)); h += mlp(ln2(h)). */
final class ClipEncoderLayer {
    private final LayerNormLayer layerNorm1; // [D]
    private final ClipAttention selfAttn;
    private final LayerNormLayer layerNorm2; // [D]
    private final ClipMlp mlp;

    private ClipEncoderLayer(LayerNormLayer layerNorm1, ClipAttention selfAttn, LayerNormLayer layerNorm2, ClipMlp mlp) {
        this.layerNorm1 = layerNorm1;
        this.selfAttn = selfAttn;
        this.layerNorm2 = layerNorm2;
        this.mlp = mlp;
    }

    static ClipEncoderLayer load(ClipTextConfig c, WeightScope w, Arena arena) {
        return new ClipEncoderLayer(
                LayerNormLayer.load(w.at("layer_norm1"), c.hiddenSize(), c.layerNormEps(), arena),
                ClipAttention.load(c, w.at("self_attn"), arena),
                LayerNormLayer.load(w.at("layer_norm2"), c.hiddenSize(), c.layerNormEps(), arena),
                ClipMlp.load(c, w.at("mlp"), arena));
    }

    /** Updates the residual stream h [B, L, D] in place. */
    void forward(Workspace ws, Tensor h) {
        // 1. attention branch
        Tensor n = layerNorm1.forward(ws, h); // [B, L, D]
        Tensor a = selfAttn.forward(ws, n);   // [B, L, D]
        Elementwise.add(h, a, h);
        ws.give(a);
        // 2. MLP branch (n is reused for the second norm)
        layerNorm2.forward(h, n);
        Tensor m = mlp.forward(ws, n); // [B, L, D]
        Elementwise.add(h, m, h);
        ws.give(m);
        ws.give(n);
    }
}
