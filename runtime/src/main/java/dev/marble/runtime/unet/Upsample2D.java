package dev.marble.runtime.unet;

import dev.marble.runtime.nn.Conv2dLayer;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** diffusers {@code Upsample2D} with use_conv: nearest-neighbour 2× then a 3×3 convolution. */
final class Upsample2D {
    private final Conv2dLayer conv; // [C, C, 3, 3]

    private Upsample2D(Conv2dLayer conv) {
        this.conv = conv;
    }

    static Upsample2D load(WeightScope w, int channels, Arena arena) {
        return new Upsample2D(Conv2dLayer.load(w.at("conv"), channels, channels, 3, 1, 1, arena));
    }

    /** x [B, H, W, C] → a new workspace tensor [B, 2H, 2W, C]. x is left to the caller. */
    Tensor forward(Workspace ws, Tensor x) {
        Tensor u = ws.take(DType.F32, x.dim(0), 2 * x.dim(1), 2 * x.dim(2), x.dim(3)); // [B, 2H, 2W, C]
        Elementwise.upsampleNearest2x(x, u);
        Tensor out = conv.forward(ws, u); // [B, 2H, 2W, C]
        ws.give(u);
        return out;
    }
}
