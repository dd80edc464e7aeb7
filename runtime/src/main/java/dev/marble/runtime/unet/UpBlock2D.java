package dev.marble.runtime.unet;

import dev.marble.runtime.nn.ResnetBlock2D;
import dev.marble.runtime.nn.Upsample2D;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * diffusers {@code CrossAttnUpBlock2D} and {@code UpBlock2D} ({@code attentions} empty): each layer
 * concatenates the next skip connection onto the channels ([h, skip]), runs a resnet (and a
 * Transformer2DModel), then an optional nearest-2× upsampler with a 3×3 conv.
 */
final class UpBlock2D {
    private final List<ResnetBlock2D> resnets;
    private final List<Transformer2DModel> attentions; // empty for UpBlock2D
    private final Upsample2D upsampler; // upsamplers.0, or null in the last block

    private UpBlock2D(List<ResnetBlock2D> resnets, List<Transformer2DModel> attentions, Upsample2D upsampler) {
        this.resnets = List.copyOf(resnets);
        this.attentions = List.copyOf(attentions);
        this.upsampler = upsampler;
    }

    /**
     * Up block {@code i} of {@code c} (diffusers' reversed lists): output channels reversed[i], skips from
     * the mirrored down block, {@code prevOut} channels coming in.
     */
    static UpBlock2D load(WeightScope w, UNetConfig c, int i, int prevOut, Arena arena) {
        int n = c.numBlocks();
        int out = c.blockOutChannels().get(n - 1 - i);
        int in = c.blockOutChannels().get(Math.max(n - 2 - i, 0)); // reversed[min(i + 1, n - 1)]
        int layers = c.layersPerBlock().get(n - 1 - i) + 1;
        boolean crossAttn = c.upBlockTypes().get(i).equals(UNetConfig.CROSS_ATTN_UP);
        Activation.Kind act = Activation.Kind.fromConfig(c.actFn());
        List<ResnetBlock2D> resnets = new ArrayList<>();
        List<Transformer2DModel> attentions = new ArrayList<>();
        for (int j = 0; j < layers; j++) {
            int skip = j == layers - 1 ? in : out;
            int resIn = j == 0 ? prevOut : out;
            resnets.add(ResnetBlock2D.loadWithTimeEmbedding(w.at("resnets").at(j), resIn + skip, out,
                    c.timeEmbeddingDim(), c.normNumGroups(), c.normEps(), act, 1f, arena));
            if (crossAttn) {
                attentions.add(Transformer2DModel.load(w.at("attentions").at(j), out,
                        c.attentionHeads().get(n - 1 - i), c.headSize(n - 1 - i),
                        c.upTransformerLayersPerBlock().get(i).get(j),
                        c.crossAttentionDim().get(n - 1 - i), c.normNumGroups(), c.useLinearProjection(), arena));
            }
        }
        boolean last = i == n - 1;
        Upsample2D up = last ? null : Upsample2D.load(w.at("upsamplers").at(0), out, arena);
        return new UpBlock2D(resnets, attentions, up);
    }

    List<Transformer2DModel> attentions() {
        return attentions;
    }

    /** Number of skips this block pops. */
    int layers() {
        return resnets.size();
    }

    /**
     * x [B, H, W, Cprev] (consumed: given back to {@code ws}) and skips popped from {@code skips} (also
     * consumed) → a new workspace tensor [B, H', W', Cout].
     */
    Tensor forward(Workspace ws, Tensor x, Tensor tembAct, Tensor ctx, Deque<Tensor> skips) {
        Tensor h = x;
        for (int j = 0; j < resnets.size(); j++) {
            Tensor s = skips.pop(); // [B, H, W, Cskip]
            Tensor cat = ws.take(DType.F32, h.dim(0), h.dim(1), h.dim(2), h.dim(3) + s.dim(3)); // [B, H, W, C+Cskip]
            Elementwise.concatChannels(h, s, cat);
            ws.give(h);
            ws.give(s);
            // cat is given back inside: with a conv_shortcut it is normalized in place, not copied
            h = resnets.get(j).forwardAndGive(ws, cat, tembAct); // [B, H, W, Cout]
            if (!attentions.isEmpty()) {
                Tensor a = attentions.get(j).forward(ws, h, ctx); // [B, H, W, Cout]
                ws.give(h);
                h = a;
            }
        }
        if (upsampler != null) {
            // To the size of the next skip: 2× when the latent side divides by 2^levels, else the odd
            // size the stride-2 conv made on the way down (diffusers' forward_upsample_size).
            Tensor next = skips.peek();
            h = next == null ? upsampler.forward(ws, h)
                    : upsampler.forward(ws, h, next.size(1), next.size(2)); // [B, H', W', Cout]
        }
        return h;
    }
}
