package dev.marble.runtime.vae;

import dev.marble.runtime.nn.Conv2dLayer;
import dev.marble.runtime.nn.GroupNormLayer;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * diffusers ResnetBlock2D as the VAE uses it (no time embedding, output_scale_factor 1):
 * out = shortcut(x) + conv2(act(norm2(conv1(act(norm1(x)))))), with a 1×1 conv_shortcut when the
 * channel count changes.
 */
final class ResnetBlock2D {
    /** GroupNorm eps of every VAE resnet and attention block (diffusers Encoder/Decoder pass 1e-6). */
    static final float EPS = 1e-6f;

    private final GroupNormLayer norm1;     // [in]
    private final Conv2dLayer conv1;        // [out, in, 3, 3]
    private final GroupNormLayer norm2;     // [out]
    private final Conv2dLayer conv2;        // [out, out, 3, 3]
    private final Conv2dLayer convShortcut; // [out, in, 1, 1], or null when in == out
    private final Activation.Kind act;

    private ResnetBlock2D(GroupNormLayer norm1, Conv2dLayer conv1, GroupNormLayer norm2, Conv2dLayer conv2,
            Conv2dLayer convShortcut, Activation.Kind act) {
        this.norm1 = norm1;
        this.conv1 = conv1;
        this.norm2 = norm2;
        this.conv2 = conv2;
        this.convShortcut = convShortcut;
        this.act = act;
    }

    static ResnetBlock2D load(AutoencoderKLConfig c, WeightScope w, int in, int out, Arena arena) {
        int groups = c.normNumGroups();
        return new ResnetBlock2D(
                GroupNormLayer.load(w.at("norm1"), in, groups, EPS, arena),
                Conv2dLayer.load(w.at("conv1"), in, out, 3, 1, 1, arena),
                GroupNormLayer.load(w.at("norm2"), out, groups, EPS, arena),
                Conv2dLayer.load(w.at("conv2"), out, out, 3, 1, 1, arena),
                in == out ? null : Conv2dLayer.load(w.at("conv_shortcut"), in, out, 1, 1, 0, arena),
                Activation.Kind.fromConfig(c.actFn()));
    }

    /** x [B, H, W, in] → [B, H, W, out]; x is given back to {@code ws}. */
    Tensor forward(Workspace ws, Tensor x) {
        // 1. the residual: x itself, or its 1×1 projection. The projection is made first so that x,
        //    no longer needed, can be normalized in place: at full resolution in the decoder's last
        //    block that saves one input-sized activation (256 MiB for SD at 512×512).
        Tensor residual; // [B, H, W, out]
        Tensor h;        // [B, H, W, in]
        if (convShortcut == null) {
            residual = x;
            h = ws.take(DType.F32, x.shape());
        } else {
            residual = convShortcut.forward(ws, x);
            h = x;
        }
        // 2. norm1, act, conv1
        norm1.forward(x, act, h);
        Tensor h1 = conv1.forward(ws, h); // [B, H, W, out]
        ws.give(h);
        // 3. norm2, act (in place), conv2; dropout is the identity at inference
        norm2.forward(h1, act, h1);
        Tensor h2 = conv2.forward(ws, h1); // [B, H, W, out]
        ws.give(h1);
        // 4. residual sum
        Elementwise.add(h2, residual, h2);
        ws.give(residual);
        return h2;
    }
}
