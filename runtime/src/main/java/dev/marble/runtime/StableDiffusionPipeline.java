package dev.marble.runtime;

import dev.marble.runtime.clip.ClipTextModel;
import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.runtime.schedulers.Scheduler;
import dev.marble.runtime.schedulers.Schedulers;
import dev.marble.runtime.vae.AutoencoderKL;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The sampling loop of diffusers' StableDiffusionPipeline and StableDiffusionImg2ImgPipeline:
 * prompt embeddings, initial latents from the seeded generator, the scheduler loop with
 * classifier-free guidance as one batch-2 UNet call, then the VAE decode. Guidance, batching and
 * progress live here; the models and schedulers know nothing of each other.
 */
final class StableDiffusionPipeline {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private final Marble model;

    StableDiffusionPipeline(Marble model) {
        this.model = model;
    }

    GenerationResult run(GenerationRequest r, GenerationListener listener) {
        AutoencoderKL vae = model.vae();
        int factor = vae.config().downscaleFactor();
        int[] size = size(r, factor);
        int width = size[0];
        int height = size[1];
        long seed = r.seed().isPresent() ? r.seed().getAsLong() : new SecureRandom().nextLong(1L << 32);
        boolean guided = r.cfgScale() > 1.0;
        String sampler = r.sampler() == null ? "default" : r.sampler();
        List<GenerationResult.Image> images = new ArrayList<>();
        try (Arena arena = Arena.ofShared(); Workspace ws = new Workspace()) {
            // 1. prompt embeddings, [uncond, cond] when guided: [B, 77, D]
            long t0 = System.nanoTime();
            int[] cond = model.tokenizer().encode(r.prompt());
            int[][] ids = guided ? new int[][] {model.tokenizer().encode(r.negativePrompt()), cond} : new int[][] {cond};
            ClipTextModel.Output text = model.textEncoder().encode(ws, ids);
            Tensor context = text.lastHiddenState();
            double textSeconds = (System.nanoTime() - t0) / 1e9;
            for (int i = 0; i < r.batchCount(); i++) {
                images.add(generateOne(r, i, seed + i, width, height, context, arena, ws, listener, sampler,
                        i == 0 ? textSeconds : 0));
            }
        }
        return new GenerationResult(images);
    }

    private GenerationResult.Image generateOne(GenerationRequest r, int index, long seed, int width, int height,
            Tensor context, Arena arena, Workspace ws, GenerationListener listener, String sampler, double textSeconds) {
        long t0 = System.nanoTime();
        AutoencoderKL vae = model.vae();
        int factor = vae.config().downscaleFactor();
        int channels = model.unet().config().inChannels();
        long[] latentShape = {1, channels, height / factor, width / factor};
        TorchGenerator gen = new TorchGenerator(seed);
        Scheduler scheduler = Schedulers.create(sampler, model.schedulerConfig(), r.steps(), arena);
        float[] timesteps = scheduler.timesteps();

        // 2. initial latents [1, C, h, w]
        int start = 0;
        Tensor latents;
        if (r.initImage() != null) {
            Tensor init = encodeImage(r.initImage(), gen, arena, ws);
            start = scheduler.img2imgStartIndex(r.strength());
            if (start >= timesteps.length) {
                throw new MarbleException("strength " + r.strength() + " leaves no denoising steps out of " + r.steps());
            }
            Tensor noise = gen.randn(arena, init.shape());
            latents = scheduler.addNoise(init, noise, start);
        } else {
            Tensor noise;
            if (r.initLatents() != null) {
                GenerationRequest.Image given = r.initLatents();
                if (!Arrays.equals(given.shape(), latentShape)) {
                    throw new MarbleException("init latents: expected shape " + Arrays.toString(latentShape)
                            + " for " + width + "x" + height + ", got " + Arrays.toString(given.shape()));
                }
                noise = Tensor.fromFloats(arena, given.data(), latentShape);
            } else {
                noise = gen.randn(arena, latentShape);
            }
            latents = scaled(noise, scheduler.initNoiseSigma(), arena);
        }

        // 3. denoising loop
        int total = timesteps.length - start;
        for (int i = start; i < timesteps.length; i++) {
            Tensor in = scheduler.scaleModelInput(latents, i); // [1, C, h, w]
            Tensor prediction = predict(in, timesteps[i], context, (float) r.cfgScale(), arena, ws);
            latents = scheduler.step(prediction, i, latents, gen);
            if (!listener.onStep(index, i - start + 1, total, timesteps[i])) {
                throw new GenerationCancelledException();
            }
        }

        long t1 = System.nanoTime();
        // 4. decode: z = latents / scaling_factor, image = clamp(decode(z) / 2 + 0.5, 0, 1)
        float scaling = (float) vae.config().scalingFactor();
        Tensor z = ws.take(DType.F32, latentShape);
        map(latents, z, v -> v / scaling);
        Tensor decoded = vae.decode(ws, z); // [1, 3, H, W]
        ws.give(z);
        float[] pixels = toImage(decoded);
        ws.give(decoded);
        GenerationResult.Timings timings = new GenerationResult.Timings(textSeconds, (t1 - t0) / 1e9, total,
                (System.nanoTime() - t1) / 1e9);
        return new GenerationResult.Image(width, height, pixels, latents.toFloatArray(), latentShape, seed,
                parameters(r, seed, width, height), timings);
    }

    /** The UNet's prediction, guided: uncond + g · (cond − uncond) from one batch-2 call. */
    private Tensor predict(Tensor in, float t, Tensor context, float g, Arena arena, Workspace ws) {
        long[] shape = in.shape();
        long n = in.numel();
        Tensor result = Tensor.allocate(arena, DType.F32, shape);
        if (context.dim(0) == 1) {
            Tensor out = model.unet().forward(ws, in, new float[] {t}, context);
            out.copyTo(result);
            ws.give(out);
            return result;
        }
        Tensor batch = ws.take(DType.F32, 2, shape[1], shape[2], shape[3]); // [2, C, h, w]
        MemorySegment.copy(in.data(), 0, batch.data(), 0, n * 4);
        MemorySegment.copy(in.data(), 0, batch.data(), n * 4, n * 4);
        Tensor out = model.unet().forward(ws, batch, new float[] {t}, context); // [2, C, h, w]
        ws.give(batch);
        MemorySegment o = out.data();
        MemorySegment dst = result.data();
        for (long j = 0; j < n; j++) {
            float u = o.getAtIndex(F, j);
            float c = o.getAtIndex(F, n + j);
            dst.setAtIndex(F, j, u + g * (c - u));
        }
        ws.give(out);
        return result;
    }

    /** img2img: NHWC [0, 1] → NCHW [-1, 1] → posterior sample (first draw) × scaling factor. */
    private Tensor encodeImage(GenerationRequest.Image image, TorchGenerator gen, Arena arena, Workspace ws) {
        long[] s = image.shape(); // [1, H, W, 3]
        Tensor nhwc = Tensor.fromFloats(arena, image.data(), s);
        Tensor nchw = ws.take(DType.F32, 1, 3, s[1], s[2]);
        nhwc.permute(0, 3, 1, 2).copyTo(nchw);
        map(nchw, nchw, v -> 2f * v - 1f);
        AutoencoderKL.LatentDist dist = model.vae().encode(ws, nchw);
        ws.give(nchw);
        Tensor eps = gen.randn(arena, dist.mean().shape());
        float scaling = (float) model.vae().config().scalingFactor();
        Tensor init = Tensor.allocate(arena, DType.F32, dist.mean().shape());
        long n = init.numel();
        for (long j = 0; j < n; j++) {
            float sample = dist.mean().data().getAtIndex(F, j) + dist.std().data().getAtIndex(F, j) * eps.data().getAtIndex(F, j);
            init.data().setAtIndex(F, j, scaling * sample);
        }
        dist.give(ws);
        return init;
    }

    /** Width and height from the request, the init image or the model's defaults; multiples of the VAE factor. */
    private int[] size(GenerationRequest r, int factor) {
        int w = r.width();
        int h = r.height();
        if (r.initImage() != null) {
            long[] s = r.initImage().shape();
            if (s.length != 4 || s[0] != 1 || s[3] != 3) {
                throw new MarbleException("init image: expected [1, H, W, 3] pixels, got " + Arrays.toString(s));
            }
            if ((w != 0 && w != s[2]) || (h != 0 && h != s[1])) {
                throw new MarbleException("init image is " + s[2] + "x" + s[1] + " but " + w + "x" + h + " was asked for");
            }
            w = (int) s[2];
            h = (int) s[1];
        }
        if (r.initImage() != null && r.initLatents() != null) {
            throw new MarbleException("init latents and an init image exclude each other");
        }
        int defaultSize = model.sampleSize() * factor;
        w = w == 0 ? defaultSize : w;
        h = h == 0 ? defaultSize : h;
        if (w % factor != 0 || h % factor != 0) {
            throw new MarbleException("size " + w + "x" + h + ": width and height must be multiples of " + factor);
        }
        return new int[] {w, h};
    }

    private static Tensor scaled(Tensor x, float s, Arena arena) {
        Tensor out = Tensor.allocate(arena, DType.F32, x.shape());
        map(x, out, v -> v * s);
        return out;
    }

    private interface FloatOp {
        float apply(float v);
    }

    private static void map(Tensor src, Tensor dst, FloatOp op) {
        long n = src.numel();
        MemorySegment a = src.data();
        MemorySegment b = dst.data();
        for (long j = 0; j < n; j++) {
            b.setAtIndex(F, j, op.apply(a.getAtIndex(F, j)));
        }
    }

    /** [1, 3, H, W] decoder output → [H, W, 3] pixels: clamp(x / 2 + 0.5, 0, 1), as diffusers postprocesses. */
    private static float[] toImage(Tensor decoded) {
        int h = decoded.size(2);
        int w = decoded.size(3);
        float[] chw = decoded.toFloatArray();
        float[] hwc = new float[chw.length];
        int plane = h * w;
        for (int c = 0; c < 3; c++) {
            for (int p = 0; p < plane; p++) {
                float v = chw[c * plane + p] / 2f + 0.5f;
                hwc[p * 3 + c] = Math.min(1f, Math.max(0f, v));
            }
        }
        return hwc;
    }

    /** A1111's "parameters" text: prompt, negative prompt, then the settings line. */
    private String parameters(GenerationRequest r, long seed, int width, int height) {
        StringBuilder sb = new StringBuilder(r.prompt());
        if (!r.negativePrompt().isEmpty()) {
            sb.append("\nNegative prompt: ").append(r.negativePrompt());
        }
        String sampler = Schedulers.displayName(r.sampler() == null ? "default" : r.sampler(), model.schedulerConfig());
        sb.append(String.format(Locale.ROOT, "\nSteps: %d, Sampler: %s, CFG scale: %s, Seed: %d, Size: %dx%d, Model hash: %s, Model: %s",
                r.steps(), sampler, trim(r.cfgScale()), seed, width, height, model.hash(), model.name()));
        if (r.initImage() != null) {
            sb.append(", Denoising strength: ").append(trim(r.strength()));
        }
        return sb.toString();
    }

    private static String trim(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }
}
