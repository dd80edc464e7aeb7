package dev.marble.runtime.vae;

import dev.marble.runtime.nn.Downsample2D;
import dev.marble.runtime.nn.ResnetBlock2D;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** diffusers DownEncoderBlock2D: layers_per_block resnets, then a Downsample2D except in the last block. */
final class DownEncoderBlock2D {
    private final ResnetBlock2D[] resnets;  // resnets.N
    private final Downsample2D downsampler; // downsamplers.0, or null

    private DownEncoderBlock2D(ResnetBlock2D[] resnets, Downsample2D downsampler) {
        this.resnets = resnets;
        this.downsampler = downsampler;
    }

    static DownEncoderBlock2D load(AutoencoderKLConfig c, WeightScope w, int in, int out, boolean downsample,
            Arena arena) {
        Activation.Kind act = Activation.Kind.fromConfig(c.actFn());
        ResnetBlock2D[] resnets = new ResnetBlock2D[c.layersPerBlock()];
        for (int i = 0; i < resnets.length; i++) {
            resnets[i] = ResnetBlock2D.load(w.at("resnets").at(i), i == 0 ? in : out, out, c.normNumGroups(),
                    AutoencoderKL.NORM_EPS, act, arena);
        }
        // the Encoder builds its down blocks with downsample_padding 0: pad (0, 1, 0, 1)
        return new DownEncoderBlock2D(resnets,
                downsample ? Downsample2D.load(w.at("downsamplers").at(0), out, 0, arena) : null);
    }

    /** x [B, H, W, in] → [B, H/2, W/2, out] (no halving in the last block); x is given back to {@code ws}. */
    Tensor forward(Workspace ws, Tensor x) {
        Tensor h = x;
        for (ResnetBlock2D r : resnets) {
            h = r.forwardAndGive(ws, h, null);
        }
        if (downsampler == null) {
            return h;
        }
        Tensor out = downsampler.forward(ws, h); // [B, H/2, W/2, out]
        ws.give(h);
        return out;
    }
}
