package dev.marble.runtime.nn;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.util.Objects;

/**
 * diffusers {@code ResnetBlock2D} (pre-norm, time_embedding_norm "default"), as the UNet and the VAE build it:
 * out = (shortcut(x) + conv2(act(norm2(conv1(act(norm1(x))) + time_emb_proj(act(temb)))))) / output_scale_factor.
 * The VAE's blocks have no time embedding (temb_channels None) and output_scale_factor 1. The shortcut is
 * x itself, or a 1×1 conv_shortcut when the channel count changes; dropout is the identity at inference.
 */
public final class ResnetBlock2D {
    private final GroupNormLayer norm1; // [Cin]
    private final Conv2dLayer conv1; // [Cout, Cin, 3, 3]
    private final Linear time_emb_proj; // [Cout, T], or null without a time embedding
    private final GroupNormLayer norm2; // [Cout]
    private final Conv2dLayer conv2; // [Cout, Cout, 3, 3]
    private final Linear conv_shortcut; // [Cout, Cin, 1, 1] as a GEMM, or null when Cin == Cout
    private final Activation.Kind act;
    private final float outputScaleFactor;

    private ResnetBlock2D(GroupNormLayer norm1, Conv2dLayer conv1, Linear time_emb_proj, GroupNormLayer norm2,
            Conv2dLayer conv2, Linear conv_shortcut, Activation.Kind act, float outputScaleFactor) {
        this.norm1 = norm1;
        this.conv1 = conv1;
        this.time_emb_proj = time_emb_proj;
        this.norm2 = norm2;
        this.conv2 = conv2;
        this.conv_shortcut = conv_shortcut;
        this.act = act;
        this.outputScaleFactor = outputScaleFactor;
    }

    /** A block without time embedding and output_scale_factor 1, as the VAE's Encoder and Decoder build it. */
    public static ResnetBlock2D load(WeightScope w, int in, int out, int groups, float eps, Activation.Kind act,
            Arena arena) {
        return load(w, in, out, null, groups, eps, act, 1f, arena);
    }

    /** A block with time_emb_proj [out, tembChannels], as the UNet builds it. */
    public static ResnetBlock2D loadWithTimeEmbedding(WeightScope w, int in, int out, int tembChannels, int groups,
            float eps, Activation.Kind act, float outputScaleFactor, Arena arena) {
        Linear timeEmbProj = Linear.loadMatrix(w.at("time_emb_proj"), tembChannels, out, true, arena);
        return load(w, in, out, timeEmbProj, groups, eps, act, outputScaleFactor, arena);
    }

    private static ResnetBlock2D load(WeightScope w, int in, int out, Linear timeEmbProj, int groups, float eps,
            Activation.Kind act, float outputScaleFactor, Arena arena) {
        return new ResnetBlock2D(
                GroupNormLayer.load(w.at("norm1"), in, groups, eps, arena),
                Conv2dLayer.load(w.at("conv1"), in, out, 3, 1, 1, arena),
                timeEmbProj,
                GroupNormLayer.load(w.at("norm2"), out, groups, eps, arena),
                Conv2dLayer.load(w.at("conv2"), out, out, 3, 1, 1, arena),
                in != out ? Linear.loadConv1x1(w.at("conv_shortcut"), in, out, arena) : null,
                act, outputScaleFactor);
    }

    /**
     * x [B, H, W, Cin] → a new workspace tensor [B, H, W, Cout]; x is left to the caller. tembAct =
     * act(temb) [B, T] (shared by all resnets of a UNet), or null for a block without time embedding.
     */
    public Tensor forward(Workspace ws, Tensor x, Tensor tembAct) {
        return forward(ws, x, tembAct, false);
    }

    /**
     * As {@link #forward(Workspace, Tensor, Tensor)}, but x is given back to {@code ws}. With a
     * conv_shortcut, x is then normalized in place instead of into a copy: at full resolution in the
     * VAE decoder's last block that saves one input-sized activation (256 MiB for SD at 512×512).
     * When x is large as well ({@link Conv2dLayer#BAND_BYTES}) and conv1 narrows the channels, conv1
     * then writes its result over x, band by band, which saves another (128 MiB there).
     */
    public Tensor forwardAndGive(Workspace ws, Tensor x, Tensor tembAct) {
        return forward(ws, x, tembAct, true);
    }

    private Tensor forward(Workspace ws, Tensor x, Tensor tembAct, boolean giveX) {
        // 1. normalizing in place overwrites x, so the shortcut projection must be made first; otherwise it
        //    is made last, so that it is not live during the convolutions
        boolean inPlace = giveX && conv_shortcut != null;
        Tensor shortcut = inPlace ? conv_shortcut.forward(ws, x) : null; // [B, H, W, Cout]
        // 2. norm1 + act, conv1
        Tensor n = inPlace ? x : ws.take(DType.F32, x.shape()); // [B, H, W, Cin]
        norm1.forward(x, act, n);
        Tensor h;
        if (inPlace && x.byteSize() >= Conv2dLayer.BAND_BYTES && conv1.outChannels() < conv1.inChannels()) {
            h = conv1.forwardOverInput(ws, n); // [B, H, W, Cout] in x's buffer
        } else {
            h = conv1.forward(ws, n); // [B, H, W, Cout]
            ws.give(n);
        }
        // 3. add the projected time embedding per (batch, channel)
        if (time_emb_proj != null) {
            Objects.requireNonNull(tembAct, "ResnetBlock2D with time_emb_proj: no time embedding given");
            Tensor t = time_emb_proj.forward(ws, tembAct); // [B, Cout]
            Elementwise.add(h, t.reshape(x.dim(0), 1, 1, t.dim(1)), h);
            ws.give(t);
        }
        // 4. norm2 + act (in place), conv2
        norm2.forward(h, act, h);
        Tensor out = conv2.forward(ws, h); // [B, H, W, Cout]
        ws.give(h);
        // 5. shortcut and residual sum
        if (shortcut == null && conv_shortcut != null) {
            shortcut = conv_shortcut.forward(ws, x); // [B, H, W, Cout]
        }
        Elementwise.add(out, shortcut != null ? shortcut : x, out);
        if (shortcut != null) {
            ws.give(shortcut);
        }
        if (giveX && !inPlace) {
            ws.give(x); // (in place, x was given back as n, or its buffer became h)
        }
        if (outputScaleFactor != 1f) {
            // (x + h) / f; torch divides, a multiply by 1/f can differ by one ulp
            Elementwise.scale(out, 1f / outputScaleFactor, 0f, out);
        }
        return out;
    }
}
