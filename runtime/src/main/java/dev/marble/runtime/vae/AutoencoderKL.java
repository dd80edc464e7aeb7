package dev.marble.runtime.vae;

import dev.marble.runtime.nn.Conv2dLayer;
import dev.marble.runtime.nn.Layout;
import dev.marble.runtime.nn.Probe;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * diffusers AutoencoderKL: the VAE that maps images to latents ({@link #encode}) and back
 * ({@link #decode}). Public methods take and return NCHW F32 like diffusers; inside, everything is
 * channels-last. Immutable after load and safe to share between threads; each call computes in the
 * caller's {@link Workspace}, handing every temporary back as soon as it is dead.
 *
 * <p>Memory: the decoder's last two up blocks run at full image resolution, so one activation there
 * is B·H·W·C·4 bytes (SD at 512×512: 128 MiB per 128 channels). A resnet holds its input, the normed
 * copy and the conv output at once; that is the peak of a call.
 */
public final class AutoencoderKL {
    /** The encoder's output distribution (diffusers DiagonalGaussianDistribution), both [B, latent, h, w] NCHW. */
    public record LatentDist(Tensor mean, Tensor std) {
        /** Returns both tensors to {@code ws}. */
        public void give(Workspace ws) {
            ws.give(mean);
            ws.give(std);
        }
    }

    /** GroupNorm eps of every VAE resnet and attention block: diffusers' Encoder and Decoder pass 1e-6. */
    static final float NORM_EPS = 1e-6f;

    private final AutoencoderKLConfig config;
    private final Encoder encoder; // or null when loaded for decoding only
    private final Decoder decoder; // or null when loaded for encoding only
    private final Conv2dLayer quantConv;     // [2·latent, 2·latent, 1, 1], or null
    private final Conv2dLayer postQuantConv; // [latent, latent, 1, 1], or null

    private AutoencoderKL(AutoencoderKLConfig config, Encoder encoder, Decoder decoder, Conv2dLayer quantConv,
            Conv2dLayer postQuantConv) {
        this.config = config;
        this.encoder = encoder;
        this.decoder = decoder;
        this.quantConv = quantConv;
        this.postQuantConv = postQuantConv;
    }

    /**
     * Loads the weights under scope {@code w} (the root of a diffusers vae file: encoder.*, decoder.*,
     * quant_conv.*, post_quant_conv.*). Weights are copied into {@code arena}, so the source may be
     * closed afterwards.
     */
    public static AutoencoderKL load(AutoencoderKLConfig config, WeightScope w, Arena arena) {
        return load(config, w, true, true, arena);
    }

    /**
     * Only what {@link #decode} needs (decoder.*, post_quant_conv.*): a txt2img run never encodes, and
     * the encoder is a third of the VAE. {@link #encode} then fails.
     */
    public static AutoencoderKL loadDecoder(AutoencoderKLConfig config, WeightScope w, Arena arena) {
        return load(config, w, false, true, arena);
    }

    /** Only what {@link #encode} needs (encoder.*, quant_conv.*); {@link #decode} then fails. */
    public static AutoencoderKL loadEncoder(AutoencoderKLConfig config, WeightScope w, Arena arena) {
        return load(config, w, true, false, arena);
    }

    private static AutoencoderKL load(AutoencoderKLConfig config, WeightScope w, boolean encoder, boolean decoder,
            Arena arena) {
        int l = config.latentChannels();
        return new AutoencoderKL(config,
                encoder ? Encoder.load(config, w.at("encoder"), arena) : null,
                decoder ? Decoder.load(config, w.at("decoder"), arena) : null,
                encoder && config.useQuantConv() ? Conv2dLayer.load(w.at("quant_conv"), 2 * l, 2 * l, 1, 1, 0, arena)
                        : null,
                decoder && config.usePostQuantConv()
                        ? Conv2dLayer.load(w.at("post_quant_conv"), l, l, 1, 1, 0, arena) : null);
    }

    public AutoencoderKLConfig config() {
        return config;
    }

    /**
     * diffusers {@code vae.decode(z).sample}: z [B, latent, h, w] (latents already divided by
     * scaling_factor) → image [B, out, h·f, w·f] roughly in [-1, 1], not clamped, f = downscale factor.
     * The result is taken from {@code ws}; z is left to the caller.
     */
    public Tensor decode(Workspace ws, Tensor z) {
        return decode(ws, z, Probe.NONE);
    }

    Tensor decode(Workspace ws, Tensor z, Probe probe) {
        if (decoder == null) {
            throw new MarbleException("vae decode: this VAE was loaded without its decoder");
        }
        checkNchw("vae decode input z", z, config.latentChannels());
        // 1. to channels-last, post_quant_conv
        Tensor h = Layout.toNhwc(ws, z); // [B, h, w, latent]
        if (postQuantConv != null) {
            Tensor p = postQuantConv.forward(ws, h); // [B, h, w, latent]
            ws.give(h);
            h = p;
        }
        probe.see("post_quant_conv", h);
        // 2. decoder
        Tensor img = decoder.forward(ws, h, probe); // [B, H, W, out]
        // 3. back to NCHW
        Tensor out = Layout.toNchw(ws, img); // [B, out, H, W]
        ws.give(img);
        return out;
    }

    /**
     * diffusers {@code vae.encode(image).latent_dist}: image [B, in, H, W] in [-1, 1] → mean and
     * std = exp(0.5 · clamp(logvar, -30, 20)), each [B, latent, H/f, W/f]. The results are taken from
     * {@code ws}; the image is left to the caller.
     */
    public LatentDist encode(Workspace ws, Tensor image) {
        return encode(ws, image, Probe.NONE);
    }

    LatentDist encode(Workspace ws, Tensor image, Probe probe) {
        if (encoder == null) {
            throw new MarbleException("vae encode: this VAE was loaded without its encoder");
        }
        checkNchw("vae encode input image", image, config.inChannels());
        // 1. to channels-last, encoder, quant_conv
        Tensor x = Layout.toNhwc(ws, image); // [B, H, W, in]
        Tensor m = encoder.forward(ws, x, probe); // [B, h, w, 2·latent]
        if (quantConv != null) {
            Tensor q = quantConv.forward(ws, m); // [B, h, w, 2·latent]
            ws.give(m);
            m = q;
        }
        probe.see("moments", m);
        // 2. split the moments [mean | logvar] along channels, in NCHW
        Tensor moments = Layout.toNchw(ws, m); // [B, 2·latent, h, w]
        ws.give(m);
        int b = moments.size(0);
        int l = config.latentChannels();
        long plane = (long) l * moments.dim(2) * moments.dim(3); // floats of one half for one batch row
        Tensor mean = ws.take(DType.F32, b, l, moments.dim(2), moments.dim(3)); // [B, latent, h, w]
        Tensor std = ws.take(DType.F32, b, l, moments.dim(2), moments.dim(3));  // [B, latent, h, w]
        MemorySegment src = moments.data();
        ValueLayout.OfFloat f = ValueLayout.JAVA_FLOAT_UNALIGNED;
        for (int bi = 0; bi < b; bi++) {
            long meanAt = 2 * bi * plane;
            long logvarAt = meanAt + plane;
            MemorySegment.copy(src, meanAt * 4, mean.data(), bi * plane * 4, plane * 4);
            for (long i = 0; i < plane; i++) {
                // diffusers DiagonalGaussianDistribution: logvar clamped to [-30, 20] before the exp
                float logvar = Math.clamp(src.getAtIndex(f, logvarAt + i), -30f, 20f);
                std.data().setAtIndex(f, bi * plane + i, (float) Math.exp(0.5 * logvar));
            }
        }
        ws.give(moments);
        return new LatentDist(mean, std);
    }

    private static void checkNchw(String what, Tensor t, int channels) {
        if (t.rank() != 4 || t.dim(1) != channels || t.dtype() != DType.F32 || !t.isContiguous()) {
            throw new MarbleException(what + ": expected a contiguous F32 tensor [B, " + channels
                    + ", H, W], got " + t);
        }
    }
}
