package dev.marble.runtime.unet;

import dev.marble.runtime.nn.Downsample2D;
import dev.marble.runtime.nn.ResnetBlock2D;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * diffusers {@code CrossAttnDownBlock2D} (a Transformer2DModel after each resnet) and {@code DownBlock2D}
 * (resnets only; {@code attentions} is empty), then an optional stride-2 downsampler. Every layer's output
 * is also a skip connection for the up path.
 */
final class DownBlock2D {
    private final List<ResnetBlock2D> resnets;
    private final List<Transformer2DModel> attentions; // empty for DownBlock2D
    private final Downsample2D downsampler; // downsamplers.0, or null in the last block

    private DownBlock2D(List<ResnetBlock2D> resnets, List<Transformer2DModel> attentions, Downsample2D downsampler) {
        this.resnets = List.copyOf(resnets);
        this.attentions = List.copyOf(attentions);
        this.downsampler = downsampler;
    }

    /** Down block {@code i} of {@code c}, taking {@code in} channels; the output has block_out_channels[i]. */
    static DownBlock2D load(WeightScope w, UNetConfig c, int i, int in, Arena arena) {
        int out = c.blockOutChannels().get(i);
        boolean crossAttn = c.downBlockTypes().get(i).equals(UNetConfig.CROSS_ATTN_DOWN);
        Activation.Kind act = Activation.Kind.fromConfig(c.actFn());
        List<ResnetBlock2D> resnets = new ArrayList<>();
        List<Transformer2DModel> attentions = new ArrayList<>();
        for (int j = 0; j < c.layersPerBlock().get(i); j++) {
            // diffusers passes neither resnet_out_scale_factor nor resnet_skip_time_act to these blocks
            resnets.add(ResnetBlock2D.loadWithTimeEmbedding(w.at("resnets").at(j), j == 0 ? in : out, out,
                    c.timeEmbeddingDim(), c.normNumGroups(), c.normEps(), act, 1f, arena));
            if (crossAttn) {
                attentions.add(Transformer2DModel.load(w.at("attentions").at(j), out, c.attentionHeads().get(i),
                        c.headSize(i), c.transformerLayersPerBlock().get(i).get(j), c.crossAttentionDim().get(i),
                        c.normNumGroups(), c.useLinearProjection(), arena));
            }
        }
        boolean last = i == c.numBlocks() - 1;
        Downsample2D down = last ? null
                : Downsample2D.load(w.at("downsamplers").at(0), out, c.downsamplePadding(), arena);
        return new DownBlock2D(resnets, attentions, down);
    }

    List<Transformer2DModel> attentions() {
        return attentions;
    }

    /**
     * x [B, H, W, Cin] (itself a skip; left in place) → the block output, pushed with every intermediate
     * skip onto {@code skips}.
     */
    Tensor forward(Workspace ws, Tensor x, Tensor tembAct, Tensor ctx, Deque<Tensor> skips) {
        Tensor h = x;
        for (int j = 0; j < resnets.size(); j++) {
            Tensor r = resnets.get(j).forward(ws, h, tembAct); // [B, H, W, Cout]
            if (!attentions.isEmpty()) {
                Tensor a = attentions.get(j).forward(ws, r, ctx); // [B, H, W, Cout]
                ws.give(r);
                r = a;
            }
            skips.push(r);
            h = r;
        }
        if (downsampler != null) {
            h = downsampler.forward(ws, h); // [B, H/2, W/2, Cout]
            skips.push(h);
        }
        return h;
    }
}
