package dev.marble.runtime.unet;

import dev.marble.runtime.nn.ResnetBlock2D;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** diffusers {@code UNetMidBlock2DCrossAttn} (num_layers 1): resnets.0 → attentions.0 → resnets.1. */
final class UNetMidBlock2DCrossAttn {
    private final ResnetBlock2D resnet0; // resnets.0
    private final Transformer2DModel attention; // attentions.0
    private final ResnetBlock2D resnet1; // resnets.1

    private UNetMidBlock2DCrossAttn(ResnetBlock2D resnet0, Transformer2DModel attention, ResnetBlock2D resnet1) {
        this.resnet0 = resnet0;
        this.attention = attention;
        this.resnet1 = resnet1;
    }

    static UNetMidBlock2DCrossAttn load(WeightScope w, UNetConfig c, Arena arena) {
        int n = c.numBlocks();
        int ch = c.blockOutChannels().get(n - 1);
        Activation.Kind act = Activation.Kind.fromConfig(c.actFn());
        float scale = c.midBlockScaleFactor();
        return new UNetMidBlock2DCrossAttn(
                ResnetBlock2D.loadWithTimeEmbedding(w.at("resnets").at(0), ch, ch, c.timeEmbeddingDim(),
                        c.normNumGroups(), c.normEps(), act, scale, arena),
                Transformer2DModel.load(w.at("attentions").at(0), ch, c.attentionHeads().get(n - 1),
                        c.headSize(n - 1), c.midTransformerLayers(), c.crossAttentionDim().get(n - 1),
                        c.normNumGroups(), c.useLinearProjection(), arena),
                ResnetBlock2D.loadWithTimeEmbedding(w.at("resnets").at(1), ch, ch, c.timeEmbeddingDim(),
                        c.normNumGroups(), c.normEps(), act, scale, arena));
    }

    Transformer2DModel attention() {
        return attention;
    }

    /** x [B, H, W, C] (left to the caller) → a new workspace tensor [B, H, W, C]. */
    Tensor forward(Workspace ws, Tensor x, Tensor tembAct, Tensor ctx) {
        Tensor h = resnet0.forward(ws, x, tembAct); // [B, H, W, C]
        Tensor a = attention.forward(ws, h, ctx); // [B, H, W, C]
        ws.give(h);
        Tensor out = resnet1.forward(ws, a, tembAct); // [B, H, W, C]
        ws.give(a);
        return out;
    }
}
