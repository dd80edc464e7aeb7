package dev.marble.runtime.unet;

import dev.marble.runtime.nn.Conv2dLayer;
import dev.marble.runtime.nn.GroupNormLayer;
import dev.marble.runtime.nn.Linear;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * diffusers {@code ResnetBlock2D} (pre-norm, time_embedding_norm "default"):
 * out = (shortcut(x) + conv2(act(norm2(conv1(act(norm1(x))) + time_emb_proj(act(temb)))))) / output_scale_factor.
 */
final class ResnetBlock2D {
    private final GroupNormLayer norm1; // [Cin]
    private final Conv2dLayer conv1; // [Cout, Cin, 3, 3]
    private final Linear time_emb_proj; // [Cout, T]
    private final GroupNormLayer norm2; // [Cout]
    private final Conv2dLayer conv2; // [Cout, Cout, 3, 3]
    private final Linear conv_shortcut; // [Cout, Cin, 1, 1] as a GEMM, or null when Cin == Cout
    private final Activation.Kind act;
    private final float outputScaleFactor;
    private final int outChannels;

    private ResnetBlock2D(GroupNormLayer norm1, Conv2dLayer conv1, Linear time_emb_proj, GroupNormLayer norm2,
            Conv2dLayer conv2, Linear conv_shortcut, Activation.Kind act, float outputScaleFactor, int outChannels) {
        this.norm1 = norm1;
        this.conv1 = conv1;
        this.time_emb_proj = time_emb_proj;
        this.norm2 = norm2;
        this.conv2 = conv2;
        this.conv_shortcut = conv_shortcut;
        this.act = act;
        this.outputScaleFactor = outputScaleFactor;
        this.outChannels = outChannels;
    }

    static ResnetBlock2D load(WeightScope w, int in, int out, int tembChannels, int groups, float eps,
            Activation.Kind act, float outputScaleFactor, Arena arena) {
        return new ResnetBlock2D(
                GroupNormLayer.load(w.at("norm1"), in, groups, eps, arena),
                Conv2dLayer.load(w.at("conv1"), in, out, 3, 1, 1, arena),
                Linear.loadMatrix(w.at("time_emb_proj"), tembChannels, out, true, arena),
                GroupNormLayer.load(w.at("norm2"), out, groups, eps, arena),
                Conv2dLayer.load(w.at("conv2"), out, out, 3, 1, 1, arena),
                in != out ? Linear.loadConv1x1(w.at("conv_shortcut"), in, out, arena) : null,
                act, outputScaleFactor, out);
    }

    /**
     * x [B, H, W, Cin], tembAct = act(temb) [B, T] (shared by all resnets) → a new workspace tensor
     * [B, H, W, Cout]. x is left to the caller.
     */
    Tensor forward(Workspace ws, Tensor x, Tensor tembAct) {
        int b = x.size(0);
        // 1. norm1 + act, conv1
        Tensor n = ws.take(DType.F32, x.shape()); // [B, H, W, Cin]
        norm1.forward(x, act, n);
        Tensor h = conv1.forward(ws, n); // [B, H, W, Cout]
        ws.give(n);
        // 2. add the projected time embedding per (batch, channel)
        Tensor t = time_emb_proj.forward(ws, tembAct); // [B, Cout]
        Elementwise.add(h, t.reshape(b, 1, 1, outChannels), h);
        ws.give(t);
        // 3. norm2 + act (in place), conv2
        norm2.forward(h, act, h);
        Tensor out = conv2.forward(ws, h); // [B, H, W, Cout]
        ws.give(h);
        // 4. shortcut and residual sum
        if (conv_shortcut != null) {
            Tensor s = conv_shortcut.forward(ws, x); // [B, H, W, Cout]
            Elementwise.add(out, s, out);
            ws.give(s);
        } else {
            Elementwise.add(out, x, out);
        }
        if (outputScaleFactor != 1f) {
            // (x + h) / f; torch divides, a multiply by 1/f can differ by one ulp
            Elementwise.scale(out, 1f / outputScaleFactor, 0f, out);
        }
        return out;
    }
}
