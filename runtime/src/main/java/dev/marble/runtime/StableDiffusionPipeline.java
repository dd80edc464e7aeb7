package dev.marble.runtime;

import dev.marble.runtime.clip.ClipTextModel;
import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.runtime.schedulers.Scheduler;
import dev.marble.runtime.schedulers.Schedulers;
import dev.marble.runtime.unet.UNet2DConditionModel;
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

    /** One image of a batch: its generator, scheduler and latents as they pass through the stages. */
    private static final class Job {
        final int index;
        final long seed;
        final TorchGenerator gen;
        final Scheduler scheduler;
        final int start;
        Tensor latents; // [1, C, h, w]
        double denoising;
        double decoding;
        double loading;
        float[] pixels;

        Job(int index, long seed, Scheduler scheduler, int start) {
            this.index = index;
            this.seed = seed;
            this.gen = new TorchGenerator(seed);
            this.scheduler = scheduler;
            this.start = start;
        }
    }

    /**
     * Runs the stages one after the other for the whole batch: prompt embeddings, (img2img) the VAE
     * encode, the denoising loops, the VAE decodes. Each stage has its own scratch and holds its
     * component only while it runs, so a staged model has one component in memory at a time. Every
     * image draws from its own generator in the order diffusers does, so the order of the stages
     * across images changes nothing.
     */
    GenerationResult run(GenerationRequest r, GenerationListener listener) {
        int factor = model.vaeConfig().downscaleFactor();
        int[] size = size(r, factor);
        int width = size[0];
        int height = size[1];
        long seed = r.seed().isPresent() ? r.seed().getAsLong() : new SecureRandom().nextLong(1L << 32);
        boolean guided = r.cfgScale() > 1.0;
        String sampler = r.sampler() == null ? "default" : r.sampler();
        long[] latentShape = {1, model.unetConfig().inChannels(), height / factor, width / factor};
        if (r.initLatents() != null && !Arrays.equals(r.initLatents().shape(), latentShape)) {
            throw new MarbleException("init latents: expected shape " + Arrays.toString(latentShape)
                    + " for " + width + "x" + height + ", got " + Arrays.toString(r.initLatents().shape()));
        }
        try (Arena arena = Arena.ofShared()) {
            // 0. a scheduler per image: a bad sampler name or strength fails before any weights load
            List<Job> jobs = new ArrayList<>();
            for (int i = 0; i < r.batchCount(); i++) {
                Scheduler scheduler = Schedulers.create(sampler, model.schedulerConfig(), r.steps(), arena);
                int start = r.initImage() != null ? scheduler.img2imgStartIndex(r.strength()) : 0;
                if (start >= scheduler.timesteps().length) {
                    throw new MarbleException("strength " + r.strength() + " leaves no denoising steps out of " + r.steps());
                }
                jobs.add(new Job(i, seed + i, scheduler, start));
            }
            // 1. prompt embeddings, [uncond, cond] when guided: [B, 77, D]
            listener.stageStarted(GenerationListener.Stage.TEXT_ENCODER);
            long t0 = System.nanoTime();
            Tensor context;
            double textLoading;
            try (ComponentSlot<ClipTextModel>.Lease te = model.textEncoderSlot().acquire(); Workspace ws = new Workspace()) {
                textLoading = (System.nanoTime() - t0) / 1e9;
                int[] cond = model.tokenizer().encode(r.prompt());
                int[][] ids = guided ? new int[][] {model.tokenizer().encode(r.negativePrompt()), cond} : new int[][] {cond};
                ClipTextModel.Output text = te.get().encode(ws, ids);
                context = Tensor.allocate(arena, DType.F32, text.lastHiddenState().shape());
                text.lastHiddenState().copyTo(context);
                text.give(ws);
            }
            double textSeconds = (System.nanoTime() - t0) / 1e9 - textLoading;
            listener.stageFinished(GenerationListener.Stage.TEXT_ENCODER);
            jobs.get(0).loading += textLoading;
            // 2. initial latents [1, C, h, w]: the encoded init image noised to the first timestep, or noise
            if (r.initImage() != null) {
                listener.stageStarted(GenerationListener.Stage.VAE_ENCODE);
                encodeImages(r.initImage(), jobs, arena);
                listener.stageFinished(GenerationListener.Stage.VAE_ENCODE);
            } else {
                for (Job job : jobs) {
                    Tensor noise = r.initLatents() != null ? Tensor.fromFloats(arena, r.initLatents().data(), latentShape)
                            : job.gen.randn(arena, latentShape);
                    job.latents = scaled(noise, job.scheduler.initNoiseSigma(), arena);
                }
            }
            // 3. denoising loops
            listener.stageStarted(GenerationListener.Stage.UNET);
            long t1 = System.nanoTime();
            try (ComponentSlot<UNet2DConditionModel>.Lease unet = model.unetSlot().acquire(); Workspace ws = new Workspace()) {
                jobs.get(0).loading += (System.nanoTime() - t1) / 1e9;
                for (Job job : jobs) {
                    long t = System.nanoTime();
                    denoise(job, unet.get(), context, (float) r.cfgScale(), (float) r.guidanceRescale(), listener, arena,
                            ws);
                    job.denoising += (System.nanoTime() - t) / 1e9;
                }
            }
            listener.stageFinished(GenerationListener.Stage.UNET);
            // 4. decode: z = latents / scaling_factor, image = clamp(decode(z) / 2 + 0.5, 0, 1)
            listener.stageStarted(GenerationListener.Stage.VAE_DECODE);
            long t2 = System.nanoTime();
            try (ComponentSlot<AutoencoderKL>.Lease vae = model.vaeDecoderSlot().acquire(); Workspace ws = new Workspace()) {
                jobs.get(0).loading += (System.nanoTime() - t2) / 1e9;
                float scaling = (float) model.vaeConfig().scalingFactor();
                for (Job job : jobs) {
                    long t = System.nanoTime();
                    Tensor z = ws.take(DType.F32, latentShape);
                    map(job.latents, z, v -> v / scaling);
                    Tensor decoded = vae.get().decode(ws, z); // [1, 3, H, W]
                    ws.give(z);
                    job.pixels = toImage(decoded);
                    ws.give(decoded);
                    job.decoding += (System.nanoTime() - t) / 1e9;
                }
            }
            listener.stageFinished(GenerationListener.Stage.VAE_DECODE);
            List<GenerationResult.Image> images = new ArrayList<>();
            for (Job job : jobs) {
                GenerationResult.Timings timings = new GenerationResult.Timings(job.index == 0 ? textSeconds : 0,
                        job.denoising, job.scheduler.timesteps().length - job.start, job.decoding, job.loading);
                images.add(new GenerationResult.Image(width, height, job.pixels, job.latents.toFloatArray(), latentShape,
                        job.seed, parameters(r, job.seed, width, height), timings));
            }
            return new GenerationResult(images);
        }
    }

    /** The scheduler loop of one image, from its start index. */
    private void denoise(Job job, UNet2DConditionModel unet, Tensor context, float cfgScale, float rescale,
            GenerationListener listener, Arena arena, Workspace ws) {
        float[] timesteps = job.scheduler.timesteps();
        int total = timesteps.length - job.start;
        Tensor latents = job.latents;
        for (int i = job.start; i < timesteps.length; i++) {
            Tensor in = job.scheduler.scaleModelInput(latents, i); // [1, C, h, w]
            Tensor prediction = predict(unet, in, timesteps[i], context, cfgScale, rescale, arena, ws);
            latents = job.scheduler.step(prediction, i, latents, job.gen);
            if (!listener.onStep(job.index, i - job.start + 1, total, timesteps[i])) {
                throw new GenerationCancelledException();
            }
        }
        job.latents = latents;
    }

    /** The UNet's prediction, guided (see {@link Guidance}) from one batch-2 call. */
    private static Tensor predict(UNet2DConditionModel unet, Tensor in, float t, Tensor context, float g,
            float rescale, Arena arena, Workspace ws) {
        long[] shape = in.shape();
        long n = in.numel();
        Tensor result = Tensor.allocate(arena, DType.F32, shape);
        if (context.dim(0) == 1) {
            Tensor out = unet.forward(ws, in, new float[] {t}, context);
            out.copyTo(result);
            ws.give(out);
            return result;
        }
        Tensor batch = ws.take(DType.F32, 2, shape[1], shape[2], shape[3]); // [2, C, h, w]
        MemorySegment.copy(in.data(), 0, batch.data(), 0, n * 4);
        MemorySegment.copy(in.data(), 0, batch.data(), n * 4, n * 4);
        Tensor out = unet.forward(ws, batch, new float[] {t}, context); // [2, C, h, w]
        ws.give(batch);
        Guidance.combine(out.data(), n, g, rescale, result.data());
        ws.give(out);
        return result;
    }

    /**
     * img2img: NHWC [0, 1] → NCHW [-1, 1] → the posterior (encoded once) → for each image a sample
     * (its generator's first draw) × scaling factor, noised to its start timestep (the second draw).
     */
    private void encodeImages(GenerationRequest.Image image, List<Job> jobs, Arena arena) {
        long t0 = System.nanoTime();
        double loading;
        try (ComponentSlot<AutoencoderKL>.Lease vae = model.vaeEncoderSlot().acquire(); Workspace ws = new Workspace()) {
            loading = (System.nanoTime() - t0) / 1e9;
            jobs.get(0).loading += loading;
            long[] s = image.shape(); // [1, H, W, 3]
            Tensor nhwc = Tensor.fromFloats(arena, image.data(), s);
            Tensor nchw = ws.take(DType.F32, 1, 3, s[1], s[2]);
            nhwc.permute(0, 3, 1, 2).copyTo(nchw);
            map(nchw, nchw, v -> 2f * v - 1f);
            AutoencoderKL.LatentDist dist = vae.get().encode(ws, nchw);
            ws.give(nchw);
            float scaling = (float) model.vaeConfig().scalingFactor();
            long n = dist.mean().numel();
            for (Job job : jobs) {
                Tensor eps = job.gen.randn(arena, dist.mean().shape());
                Tensor init = Tensor.allocate(arena, DType.F32, dist.mean().shape());
                for (long j = 0; j < n; j++) {
                    float sample = dist.mean().data().getAtIndex(F, j)
                            + dist.std().data().getAtIndex(F, j) * eps.data().getAtIndex(F, j);
                    init.data().setAtIndex(F, j, scaling * sample);
                }
                Tensor noise = job.gen.randn(arena, init.shape());
                job.latents = job.scheduler.addNoise(init, noise, job.start);
            }
            dist.give(ws);
        }
        double seconds = (System.nanoTime() - t0) / 1e9 - loading;
        for (Job job : jobs) {
            job.denoising += seconds / jobs.size();
        }
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
        if (r.guidanceRescale() > 0 && r.cfgScale() > 1.0) {
            sb.append(", Guidance rescale: ").append(trim(r.guidanceRescale()));
        }
        return sb.toString();
    }

    private static String trim(double v) {
        return v == Math.rint(v) ? Long.toString((long) v) : Double.toString(v);
    }
}
