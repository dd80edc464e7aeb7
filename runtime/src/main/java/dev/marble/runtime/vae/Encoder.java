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
 * diffusers vae.Encoder: conv_in, down blocks (halving the resolution in all but the last), mid block,
 * GroupNorm + SiLU, conv_out to 2 × latent_channels (mean and log-variance: double_z).
 */
final class Encoder {
    private final Conv2dLayer convIn;            // [C0, in, 3, 3]
    private final DownEncoderBlock2D[] downBlocks; // down_blocks.N
    private final UNetMidBlock2D midBlock;
    private final GroupNormLayer convNormOut;    // [Cn]
    private final Conv2dLayer convOut;           // [2·latent, Cn, 3, 3]

    private Encoder(Conv2dLayer convIn, DownEncoderBlock2D[] downBlocks, UNetMidBlock2D midBlock,
            GroupNormLayer convNormOut, Conv2dLayer convOut) {
        this.convIn = convIn;
        this.downBlocks = downBlocks;
        this.midBlock = midBlock;
        this.convNormOut = convNormOut;
        this.convOut = convOut;
    }

    static Encoder load(AutoencoderKLConfig c, WeightScope w, Arena arena) {
        List<Integer> ch = c.blockOutChannels();
        int last = ch.getLast();
        DownEncoderBlock2D[] down = new DownEncoderBlock2D[ch.size()];
        for (int i = 0; i < down.length; i++) {
            int in = i == 0 ? ch.get(0) : ch.get(i - 1);
            down[i] = DownEncoderBlock2D.load(c, w.at("down_blocks").at(i), in, ch.get(i), i < down.length - 1, arena);
        }
        return new Encoder(
                Conv2dLayer.load(w.at("conv_in"), c.inChannels(), ch.get(0), 3, 1, 1, arena),
                down,
                UNetMidBlock2D.load(c, w.at("mid_block"), last, arena),
                GroupNormLayer.load(w.at("conv_norm_out"), last, c.normNumGroups(), AutoencoderKL.NORM_EPS, arena),
                Conv2dLayer.load(w.at("conv_out"), last, 2 * c.latentChannels(), 3, 1, 1, arena));
    }

    /** image [B, H, W, in] → moments [B, H/f, W/f, 2·latent]; the image is given back to {@code ws}. */
    Tensor forward(Workspace ws, Tensor image, Probe probe) {
        // 1. conv_in
        Tensor h = convIn.forward(ws, image); // [B, H, W, C0]
        ws.give(image);
        probe.see("encoder.conv_in", h);
        // 2. down blocks
        for (int i = 0; i < downBlocks.length; i++) {
            h = downBlocks[i].forward(ws, h); // [B, H', W', Ci], halved except in the last block
            probe.see("encoder.down_blocks." + i, h);
        }
        // 3. mid block
        h = midBlock.forward(ws, h); // [B, h, w, Cn]
        probe.see("encoder.mid_block", h);
        // 4. norm + SiLU (in place), conv_out
        convNormOut.forward(h, Activation.Kind.SILU, h);
        Tensor out = convOut.forward(ws, h); // [B, h, w, 2·latent]
        ws.give(h);
        probe.see("encoder.conv_out", out);
        return out;
    }
}
