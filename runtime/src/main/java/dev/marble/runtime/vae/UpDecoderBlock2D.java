package dev.marble.runtime.vae;

import dev.marble.runtime.nn.ResnetBlock2D;
import dev.marble.runtime.nn.Upsample2D;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** diffusers UpDecoderBlock2D: layers_per_block + 1 resnets, then an Upsample2D except in the last block. */
final class UpDecoderBlock2D {
    private final ResnetBlock2D[] resnets; // resnets.N
    private final Upsample2D upsampler;    // upsamplers.0, or null

    private UpDecoderBlock2D(ResnetBlock2D[] resnets, Upsample2D upsampler) {
        this.resnets = resnets;
        this.upsampler = upsampler;
    }

    static UpDecoderBlock2D load(AutoencoderKLConfig c, WeightScope w, int in, int out, boolean upsample,
            Arena arena) {
        Activation.Kind act = Activation.Kind.fromConfig(c.actFn());
        ResnetBlock2D[] resnets = new ResnetBlock2D[c.layersPerBlock() + 1];
        for (int i = 0; i < resnets.length; i++) {
            resnets[i] = ResnetBlock2D.load(w.at("resnets").at(i), i == 0 ? in : out, out, c.normNumGroups(),
                    AutoencoderKL.NORM_EPS, act, arena);
        }
        return new UpDecoderBlock2D(resnets, upsample ? Upsample2D.load(w.at("upsamplers").at(0), out, arena) : null);
    }

    /** x [B, H, W, in] → [B, 2H, 2W, out] (no doubling in the last block); x is given back to {@code ws}. */
    Tensor forward(Workspace ws, Tensor x) {
        Tensor h = x;
        for (ResnetBlock2D r : resnets) {
            h = r.forwardAndGive(ws, h, null);
        }
        return upsampler == null ? h : upsampler.forward(ws, h);
    }
}
