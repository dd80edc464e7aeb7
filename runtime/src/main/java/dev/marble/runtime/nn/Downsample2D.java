package dev.marble.runtime.nn;

import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * diffusers {@code Downsample2D} with use_conv: a 3×3 convolution with stride 2, halving H and W. With
 * padding 0 (the VAE encoder; a UNet with downsample_padding 0) diffusers first zero-pads one row at the
 * bottom and one column at the right (F.pad (0, 1, 0, 1)), which is the conv's asymmetric padding here.
 */
public final class Downsample2D {
    private final Conv2dLayer conv; // [C, C, 3, 3], stride 2

    private Downsample2D(Conv2dLayer conv) {
        this.conv = conv;
    }

    public static Downsample2D load(WeightScope w, int channels, int padding, Arena arena) {
        Conv2dLayer conv = padding == 0
                ? Conv2dLayer.load(w.at("conv"), channels, channels, 3, 2, 0, 0, 1, 1, arena)
                : Conv2dLayer.load(w.at("conv"), channels, channels, 3, 2, padding, arena);
        return new Downsample2D(conv);
    }

    /**
     * x [B, H, W, C] → a new workspace tensor [B, H', W', C], H' = ⌊(H + 2·padding − 3) / 2⌋ + 1, or
     * ⌊H / 2⌋ with padding 0. x is left to the caller.
     */
    public Tensor forward(Workspace ws, Tensor x) {
        return conv.forward(ws, x);
    }
}
