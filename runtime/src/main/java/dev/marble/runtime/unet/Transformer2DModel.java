package dev.marble.runtime.unet;

import dev.marble.runtime.nn.GroupNormLayer;
import dev.marble.runtime.nn.Linear;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

/**
 * diffusers {@code Transformer2DModel} on continuous input: GroupNorm → proj_in → BasicTransformerBlocks
 * over the H·W tokens → proj_out → + residual. proj_in / proj_out are 1×1 convs (SD 1.x) or Linear
 * layers (use_linear_projection, SD 2.x); on channels-last data both are the same GEMM, only the weight
 * shape differs ([inner, C, 1, 1] vs [inner, C]).
 */
final class Transformer2DModel {
    /** Hard-coded in diffusers' Transformer2DModel (not the UNet's norm_eps). */
    private static final float GROUP_NORM_EPS = 1e-6f;

    private final GroupNormLayer norm; // [C]
    private final Linear proj_in; // [inner, C]
    private final List<BasicTransformerBlock> transformer_blocks;
    private final Linear proj_out; // [C, inner]

    private Transformer2DModel(GroupNormLayer norm, Linear proj_in, List<BasicTransformerBlock> transformer_blocks,
            Linear proj_out) {
        this.norm = norm;
        this.proj_in = proj_in;
        this.transformer_blocks = List.copyOf(transformer_blocks);
        this.proj_out = proj_out;
    }

    /** inner = heads · headDim, which equals channels unless heads does not divide them. */
    static Transformer2DModel load(WeightScope w, int channels, int heads, int headDim, int layers,
            int crossAttentionDim, int groups, boolean linearProjection, Arena arena) {
        int inner = heads * headDim;
        List<BasicTransformerBlock> blocks = new ArrayList<>();
        for (int i = 0; i < layers; i++) {
            blocks.add(BasicTransformerBlock.load(w.at("transformer_blocks").at(i), inner, heads, headDim,
                    crossAttentionDim, arena));
        }
        return new Transformer2DModel(
                GroupNormLayer.load(w.at("norm"), channels, groups, GROUP_NORM_EPS, arena),
                linearProjection ? Linear.loadMatrix(w.at("proj_in"), channels, inner, true, arena)
                        : Linear.loadConv1x1(w.at("proj_in"), channels, inner, arena),
                blocks,
                linearProjection ? Linear.loadMatrix(w.at("proj_out"), inner, channels, true, arena)
                        : Linear.loadConv1x1(w.at("proj_out"), inner, channels, arena));
    }

    int contextDim() {
        return transformer_blocks.getFirst().contextDim();
    }

    /** x [B, H, W, C], ctx [B, Lk, Dctx] → a new workspace tensor [B, H, W, C]. x is left to the caller. */
    Tensor forward(Workspace ws, Tensor x, Tensor ctx) {
        int b = x.size(0);
        long tokens = x.dim(1) * x.dim(2);
        // 1. GroupNorm, proj_in onto H·W tokens
        Tensor n = ws.take(DType.F32, x.shape()); // [B, H, W, C]
        norm.forward(x, Activation.Kind.IDENTITY, n);
        Tensor h = proj_in.forward(ws, n.reshape(b, tokens, x.dim(3))); // [B, HW, inner]
        ws.give(n);
        // 2. transformer blocks, in place
        for (BasicTransformerBlock block : transformer_blocks) {
            block.forward(ws, h, ctx);
        }
        // 3. proj_out back to C channels, residual
        Tensor out = ws.take(DType.F32, x.shape()); // [B, H, W, C]
        proj_out.forward(h, out.reshape(b, tokens, x.dim(3)));
        ws.give(h);
        Elementwise.add(out, x, out);
        return out;
    }
}
