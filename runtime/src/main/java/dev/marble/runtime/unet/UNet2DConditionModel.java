package dev.marble.runtime.unet;

import dev.marble.runtime.nn.Conv2dLayer;
import dev.marble.runtime.nn.GroupNormLayer;
import dev.marble.runtime.nn.Layout;
import dev.marble.runtime.nn.Probe;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.TreeSet;

/**
 * The Stable Diffusion denoiser, diffusers {@code UNet2DConditionModel}:
 * {@code (sample [B, C, h, w], timesteps, text context [B, L, D]) → prediction [B, C', h, w]}.
 *
 * <p>Public tensors are NCHW like diffusers; inside, activations are channels-last ([B, H, W, C], or
 * [B, H·W, C] tokens in the transformers) so that 1×1 convs and attention projections are plain GEMMs.
 * All activation maths is F32; weights stay in their file dtype. Immutable after {@link #load}: a
 * forward call touches only the {@link Workspace} it is given, so one model serves many threads.
 *
 * <p>Any latent size works: where a side is not a multiple of 2^(number of downsamplers), the
 * stride-2 convs round up on the way down and each upsampler resizes to its skip's size on the way
 * up, as diffusers does with {@code forward_upsample_size}.
 */
public final class UNet2DConditionModel {
    private final UNetConfig config;
    private final Timesteps time_proj;
    private final TimestepEmbedding time_embedding; // linear_1 [T, C0], linear_2 [T, T]
    private final Conv2dLayer conv_in; // [C0, in, k, k]
    private final List<DownBlock2D> down_blocks;
    private final UNetMidBlock2DCrossAttn mid_block; // or null
    private final List<UpBlock2D> up_blocks;
    private final GroupNormLayer conv_norm_out; // [C0]
    private final Conv2dLayer conv_out; // [out, C0, k, k]
    private final Activation.Kind act;
    private final Activation.Kind timeEmbedAct;
    private final int[] contextDims; // distinct cross_attention_dim values of the blocks that attend

    private UNet2DConditionModel(UNetConfig config, TimestepEmbedding time_embedding, Conv2dLayer conv_in,
            List<DownBlock2D> down_blocks, UNetMidBlock2DCrossAttn mid_block, List<UpBlock2D> up_blocks,
            GroupNormLayer conv_norm_out, Conv2dLayer conv_out) {
        this.config = config;
        this.time_proj = new Timesteps(config.blockOutChannels().getFirst(), config.flipSinToCos(),
                config.freqShift());
        this.time_embedding = time_embedding;
        this.conv_in = conv_in;
        this.down_blocks = List.copyOf(down_blocks);
        this.mid_block = mid_block;
        this.up_blocks = List.copyOf(up_blocks);
        this.conv_norm_out = conv_norm_out;
        this.conv_out = conv_out;
        this.act = Activation.Kind.fromConfig(config.actFn());
        this.timeEmbedAct = activationOrIdentity(config.timeEmbeddingActFn());
        TreeSet<Integer> dims = new TreeSet<>();
        down_blocks.forEach(b -> b.attentions().forEach(a -> dims.add(a.contextDim())));
        up_blocks.forEach(b -> b.attentions().forEach(a -> dims.add(a.contextDim())));
        if (mid_block != null) {
            dims.add(mid_block.attention().contextDim());
        }
        this.contextDims = dims.stream().mapToInt(Integer::intValue).toArray();
    }

    /**
     * Builds the model from {@code w} (keys as in diffusers' {@code unet/diffusion_pytorch_model.safetensors},
     * relative to {@code w}), checking every tensor's shape against the config. Packed weights and
     * widened norms live in {@code arena}, which must outlive the model and be shared
     * ({@link Arena#ofShared()}, {@link Arena#global()} or an auto arena): the kernels' worker threads read it.
     */
    public static UNet2DConditionModel load(UNetConfig c, WeightScope w, Arena arena) {
        Activation.Kind act = Activation.Kind.fromConfig(c.actFn());
        List<Integer> channels = c.blockOutChannels();
        int c0 = channels.getFirst();
        int n = c.numBlocks();

        Conv2dLayer convIn = Conv2dLayer.load(w.at("conv_in"), c.inChannels(), c0, c.convInKernel(), 1,
                (c.convInKernel() - 1) / 2, arena);
        TimestepEmbedding timeEmbedding = TimestepEmbedding.load(w.at("time_embedding"), c0, c.timeEmbeddingDim(),
                act, activationOrIdentity(c.timestepPostAct()), arena);

        List<DownBlock2D> down = new ArrayList<>();
        int in = c0;
        for (int i = 0; i < n; i++) {
            down.add(DownBlock2D.load(w.at("down_blocks").at(i), c, i, in, arena));
            in = channels.get(i);
        }
        UNetMidBlock2DCrossAttn mid = c.midBlockType() == null ? null
                : UNetMidBlock2DCrossAttn.load(w.at("mid_block"), c, arena);
        List<UpBlock2D> up = new ArrayList<>();
        int prevOut = channels.get(n - 1);
        for (int i = 0; i < n; i++) {
            up.add(UpBlock2D.load(w.at("up_blocks").at(i), c, i, prevOut, arena));
            prevOut = channels.get(n - 1 - i);
        }

        GroupNormLayer normOut = GroupNormLayer.load(w.at("conv_norm_out"), c0, c.normNumGroups(), c.normEps(), arena);
        Conv2dLayer convOut = Conv2dLayer.load(w.at("conv_out"), c0, c.outChannels(), c.convOutKernel(), 1,
                (c.convOutKernel() - 1) / 2, arena);
        return new UNet2DConditionModel(c, timeEmbedding, convIn, down, mid, up, normOut, convOut);
    }

    public UNetConfig config() {
        return config;
    }

    /**
     * One denoiser evaluation.
     *
     * @param ws scratch memory for this call; the result is taken from it (give it back when done)
     * @param sample latents [B, in_channels, h, w], NCHW, any float dtype
     * @param timesteps one timestep for the whole batch, or one per row; may be fractional
     * @param encoderHiddenStates text context [B, L, cross_attention_dim]
     * @return the prediction [B, out_channels, h, w] F32, NCHW
     */
    public Tensor forward(Workspace ws, Tensor sample, float[] timesteps, Tensor encoderHiddenStates) {
        return forward(ws, sample, timesteps, encoderHiddenStates, Probe.NONE);
    }

    Tensor forward(Workspace ws, Tensor sample, float[] timesteps, Tensor encoderHiddenStates, Probe probe) {
        int b = checkInputs(sample, timesteps, encoderHiddenStates);
        Deque<Tensor> skips = new ArrayDeque<>();

        // 1. time: sinusoidal projection, MLP; every resnet applies act to it first, so do that once
        float[] t = timesteps.length == b ? timesteps : filled(b, timesteps[0]);
        float[] proj = time_proj.embed(t);
        Tensor tProj = ws.take(DType.F32, b, proj.length / b); // [B, C0]
        MemorySegment.copy(proj, 0, tProj.data(), ValueLayout.JAVA_FLOAT_UNALIGNED, 0, proj.length);
        probe.see("time_proj", tProj);
        Tensor emb = time_embedding.forward(ws, tProj); // [B, T]
        ws.give(tProj);
        Activation.apply(timeEmbedAct, emb, emb);
        probe.see("time_embedding", emb);
        Tensor tembAct = emb; // [B, T], act(emb) in place: emb itself is not needed again
        Activation.apply(act, tembAct, tembAct);
        Tensor ctx = f32Copy(ws, encoderHiddenStates); // [B, L, D]

        // 2. conv_in
        Tensor x = Layout.toNhwc(ws, sample); // [B, h, w, in]
        if (config.centerInputSample()) {
            Elementwise.scale(x, 2f, -1f, x);
        }
        Tensor h = conv_in.forward(ws, x); // [B, h, w, C0]
        ws.give(x);
        skips.push(h);
        probe.see("conv_in", h);

        // 3. down blocks: every layer output is pushed as a skip
        for (int i = 0; i < down_blocks.size(); i++) {
            h = down_blocks.get(i).forward(ws, h, tembAct, ctx, skips);
            probe.see("down_blocks." + i, h);
        }

        // 4. mid block (its input stays on the skip stack)
        if (mid_block != null) {
            h = mid_block.forward(ws, h, tembAct, ctx);
        } else {
            Tensor copy = ws.take(DType.F32, h.shape());
            h.copyTo(copy);
            h = copy;
        }
        probe.see("mid_block", h);

        // 5. up blocks: pop skips, concatenate, upsample
        for (int i = 0; i < up_blocks.size(); i++) {
            h = up_blocks.get(i).forward(ws, h, tembAct, ctx, skips);
            probe.see("up_blocks." + i, h);
        }
        ws.give(ctx);
        ws.give(tembAct);

        // 6. conv_norm_out, act, conv_out
        conv_norm_out.forward(h, Activation.Kind.IDENTITY, h);
        probe.see("conv_norm_out", h);
        Activation.apply(act, h, h);
        Tensor y = conv_out.forward(ws, h); // [B, h, w, out]
        ws.give(h);
        Tensor out = Layout.toNchw(ws, y); // [B, out, h, w]
        ws.give(y);
        return out;
    }

    /** Validates shapes; returns the batch size. */
    private int checkInputs(Tensor sample, float[] timesteps, Tensor ctx) {
        if (sample.rank() != 4 || sample.dim(1) != config.inChannels()) {
            throw new MarbleException("UNet: sample must be [B, " + config.inChannels() + ", h, w], got " + sample);
        }
        int b = sample.size(0);
        if (b < 1 || sample.dim(2) < 1 || sample.dim(3) < 1) {
            throw new MarbleException("UNet: empty sample " + sample);
        }
        if (timesteps == null || (timesteps.length != 1 && timesteps.length != b)) {
            throw new MarbleException("UNet: expected 1 or " + b + " timesteps, got "
                    + (timesteps == null ? "none" : Integer.toString(timesteps.length)));
        }
        if (ctx.rank() != 3 || ctx.dim(0) != b || ctx.dim(1) < 1) {
            throw new MarbleException("UNet: encoder_hidden_states must be [" + b + ", L, D], got " + ctx);
        }
        for (int d : contextDims) {
            if (ctx.dim(2) != d) {
                throw new MarbleException("UNet: encoder_hidden_states width " + ctx.dim(2)
                        + " does not match cross_attention_dim " + Arrays.toString(contextDims));
            }
        }
        return b;
    }

    private static Tensor f32Copy(Workspace ws, Tensor t) {
        Tensor out = ws.take(DType.F32, t.shape());
        float[] v = t.toFloatArray();
        MemorySegment.copy(v, 0, out.data(), ValueLayout.JAVA_FLOAT_UNALIGNED, 0, v.length);
        return out;
    }

    private static float[] filled(int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    private static Activation.Kind activationOrIdentity(String name) {
        return name == null ? Activation.Kind.IDENTITY : Activation.Kind.fromConfig(name);
    }
}
