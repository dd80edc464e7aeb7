package dev.marble.runtime.nn;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * diffusers {@code Upsample2D} with use_conv: nearest-neighbour 2× (F.interpolate mode "nearest"), then a
 * 3×3 conv.
 */
public final class Upsample2D {
    private final Conv2dLayer conv; // [C, C, 3, 3], pad 1

    private Upsample2D(Conv2dLayer conv) {
        this.conv = conv;
    }

    public static Upsample2D load(WeightScope w, int channels, Arena arena) {
        return new Upsample2D(Conv2dLayer.load(w.at("conv"), channels, channels, 3, 1, 1, arena));
    }

    /**
     * x [B, H, W, C] → a new workspace tensor [B, 2H, 2W, C]. x is given back to {@code ws} as soon as
     * it is upsampled, so it is not live alongside the conv output.
     */
    public Tensor forward(Workspace ws, Tensor x) {
        Tensor up = ws.take(DType.F32, x.dim(0), 2 * x.dim(1), 2 * x.dim(2), x.dim(3)); // [B, 2H, 2W, C]
        Elementwise.upsampleNearest2x(x, up);
        ws.give(x);
        Tensor out = conv.forward(ws, up); // [B, 2H, 2W, C]
        ws.give(up);
        return out;
    }
}
