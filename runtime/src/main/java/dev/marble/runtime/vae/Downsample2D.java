package dev.marble.runtime.vae;

import dev.marble.runtime.nn.Conv2dLayer;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * diffusers Downsample2D with use_conv and padding 0, as the VAE encoder builds it: zero-pad one
 * row at the bottom and one column at the right (F.pad (0, 1, 0, 1)), then a 3×3 conv with stride 2
 * and no padding. Halves H and W (rounding down).
 */
final class Downsample2D {
    private final Conv2dLayer conv; // [C, C, 3, 3], stride 2, pad (top 0, left 0, bottom 1, right 1)

    private Downsample2D(Conv2dLayer conv) {
        this.conv = conv;
    }

    static Downsample2D load(WeightScope w, int channels, Arena arena) {
        return new Downsample2D(Conv2dLayer.load(w.at("conv"), channels, channels, 3, 2, 0, 0, 1, 1, arena));
    }

    /** x [B, H, W, C] → [B, H/2, W/2, C]; x is given back to {@code ws}. */
    Tensor forward(Workspace ws, Tensor x) {
        Tensor out = conv.forward(ws, x); // [B, H/2, W/2, C]
        ws.give(x);
        return out;
    }
}
