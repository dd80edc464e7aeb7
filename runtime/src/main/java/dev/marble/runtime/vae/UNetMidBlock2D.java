package dev.marble.runtime.vae;

import dev.marble.runtime.nn.ResnetBlock2D;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** diffusers UNetMidBlock2D as the VAE builds it (one layer, no time embedding): resnet, attention, resnet. */
final class UNetMidBlock2D {
    private final ResnetBlock2D resnet0;    // resnets.0
    private final AttentionBlock attention; // attentions.0, or null when mid_block_add_attention is false
    private final ResnetBlock2D resnet1;    // resnets.1

    private UNetMidBlock2D(ResnetBlock2D resnet0, AttentionBlock attention, ResnetBlock2D resnet1) {
        this.resnet0 = resnet0;
        this.attention = attention;
        this.resnet1 = resnet1;
    }

    static UNetMidBlock2D load(AutoencoderKLConfig c, WeightScope w, int channels, Arena arena) {
        WeightScope resnets = w.at("resnets");
        Activation.Kind act = Activation.Kind.fromConfig(c.actFn());
        return new UNetMidBlock2D(
                ResnetBlock2D.load(resnets.at(0), channels, channels, c.normNumGroups(), AutoencoderKL.NORM_EPS, act,
                        arena),
                c.midBlockAddAttention() ? AttentionBlock.load(c, w.at("attentions").at(0), channels, arena) : null,
                ResnetBlock2D.load(resnets.at(1), channels, channels, c.normNumGroups(), AutoencoderKL.NORM_EPS, act,
                        arena));
    }

    /** x [B, H, W, C] → [B, H, W, C]; x is given back to {@code ws}. */
    Tensor forward(Workspace ws, Tensor x) {
        Tensor h = resnet0.forwardAndGive(ws, x, null);
        if (attention != null) {
            h = attention.forward(ws, h);
        }
        return resnet1.forwardAndGive(ws, h, null);
    }
}
