package dev.marble.runtime.vae;

import dev.marble.runtime.nn.Conv2dLayer;
import dev.marble.runtime.nn.GroupNormLayer;
import dev.marble.runtime.nn.Probe;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.util.List;

/**
 * diffusers vae.Decoder: conv_in, mid block, up blocks (channels in reverse encoder order, doubling the
 * resolution in all but the last), GroupNorm + SiLU, conv_out.
 */
final class Decoder {
    private final Conv2dLayer convIn;           // [Cn, latent, 3, 3]
    private final UNetMidBlock2D midBlock;
    private final UpDecoderBlock2D[] upBlocks;  // up_blocks.N
    private final GroupNormLayer convNormOut;   // [C0]
    private final Conv2dLayer convOut;          // [out, C0, 3, 3]

    private Decoder(Conv2dLayer convIn, UNetMidBlock2D midBlock, UpDecoderBlock2D[] upBlocks,
            GroupNormLayer convNormOut, Conv2dLayer convOut) {
        this.convIn = convIn;
        this.midBlock = midBlock;
        this.upBlocks = upBlocks;
        this.convNormOut = convNormOut;
        this.convOut = convOut;
    }

    static Decoder load(AutoencoderKLConfig c, WeightScope w, Arena arena) {
        List<Integer> rev = c.blockOutChannels().reversed();
        UpDecoderBlock2D[] up = new UpDecoderBlock2D[rev.size()];
        for (int i = 0; i < up.length; i++) {
            int in = i == 0 ? rev.get(0) : rev.get(i - 1);
            up[i] = UpDecoderBlock2D.load(c, w.at("up_blocks").at(i), in, rev.get(i), i < up.length - 1, arena);
        }
        return new Decoder(
                Conv2dLayer.load(w.at("conv_in"), c.latentChannels(), rev.get(0), 3, 1, 1, arena),
                UNetMidBlock2D.load(c, w.at("mid_block"), rev.get(0), arena),
                up,
                GroupNormLayer.load(w.at("conv_norm_out"), rev.getLast(), c.normNumGroups(), AutoencoderKL.NORM_EPS,
                        arena),
                Conv2dLayer.load(w.at("conv_out"), rev.getLast(), c.outChannels(), 3, 1, 1, arena));
    }

    /** z [B, h, w, latent] → [B, h·f, w·f, out]; z is given back to {@code ws}. */
    Tensor forward(Workspace ws, Tensor z, Probe probe) {
        // 1. conv_in
        Tensor h = convIn.forward(ws, z); // [B, h, w, Cn]
        ws.give(z);
        probe.see("decoder.conv_in", h);
        // 2. mid block
        h = midBlock.forward(ws, h); // [B, h, w, Cn]
        probe.see("decoder.mid_block", h);
        // 3. up blocks
        for (int i = 0; i < upBlocks.length; i++) {
            h = upBlocks[i].forward(ws, h); // [B, h·2^(i+1), w·2^(i+1), Ci] (the last block keeps its size)
            probe.see("decoder.up_blocks." + i, h);
        }
        // 4. norm + SiLU (in place), conv_out
        convNormOut.forward(h, Activation.Kind.SILU, h);
        Tensor out = convOut.forward(ws, h); // [B, H, W, out]
        ws.give(h);
        return out;
    }
}
