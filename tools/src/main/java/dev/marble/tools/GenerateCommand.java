package dev.marble.tools;

import dev.marble.runtime.Component;
import dev.marble.runtime.GenerationCancelledException;
import dev.marble.runtime.GenerationListener;
import dev.marble.runtime.GenerationRequest;
import dev.marble.runtime.GenerationResult;
import dev.marble.runtime.Marble;
import dev.marble.runtime.image.Images;
import dev.marble.runtime.image.Png;
import dev.marble.tensors.Tensor;
import dev.marble.weights.SafetensorsWriter;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code marble generate}: txt2img and img2img to a PNG with A1111 parameters. */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Generate images from a prompt (txt2img), or from a prompt and an image (img2img).")
final class GenerateCommand implements Runnable {
    @Mixin
    ModelOptions model;

    @Mixin
    QuantOption quant;

    @Option(names = {"-p", "--prompt"}, required = true, description = "What to draw.")
    String prompt;

    @Option(names = {"-n", "--negative-prompt"}, defaultValue = "", description = "What to steer away from.")
    String negativePrompt;

    @Option(names = "--steps", defaultValue = "20", description = "Denoising steps (default: ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--cfg-scale", defaultValue = "7.5", description = "Guidance scale; <= 1 skips the unconditional pass (default: ${DEFAULT-VALUE}).")
    double cfgScale;

    @Option(names = "--guidance-rescale", defaultValue = "0", paramLabel = "PHI", description = "diffusers' guidance_rescale in [0, 1]: pulls the guided prediction back to the conditional one's spread; about 0.7 for zero-terminal-SNR models (default: ${DEFAULT-VALUE}).")
    double guidanceRescale;

    @Option(names = "--sampler", paramLabel = "ID", description = "pndm, ddim, ddpm, euler, euler_a, dpmpp_2m, dpmpp_2m_karras, lms, lcm, or an A1111 name such as \"Euler a\" (default: the model's own).")
    String sampler;

    @Option(names = "--seed", description = "Seed, as torch.Generator(\"cpu\").manual_seed (default: random, printed).")
    Long seed;

    @Option(names = {"-W", "--width"}, defaultValue = "0", description = "Width in pixels, a multiple of 8 (default: the model's).")
    int width;

    @Option(names = {"-H", "--height"}, defaultValue = "0", description = "Height in pixels, a multiple of 8 (default: the model's).")
    int height;

    @Option(names = "--batch-count", defaultValue = "1", description = "Images to make; image i uses seed + i.")
    int batchCount;

    @Option(names = "--init-latents", paramLabel = "FILE", description = "safetensors file whose 'latents' [1,4,h,w] replace the seeded noise.")
    Path initLatents;

    @Option(names = "--init-image", paramLabel = "FILE", description = "img2img source: PNG, JPEG, or safetensors with 'init_image' [1,H,W,3] in [0,1].")
    Path initImage;

    @Option(names = "--strength", defaultValue = "0.75", description = "img2img strength in (0, 1] (default: ${DEFAULT-VALUE}).")
    double strength;

    @Option(names = {"-o", "--output"}, defaultValue = "marble.png", description = "Output PNG; with --batch-count > 1, -N is added before .png.")
    Path output;

    @Option(names = "--save-tensors", paramLabel = "FILE", description = "Also write 'final_latents' and 'image' [B,H,W,3] float32 to this safetensors file.")
    Path saveTensors;

    @Option(names = {"-q", "--quiet"}, description = "No progress bar.")
    boolean quiet;

    @Option(names = "--resident", description = "Load every component before starting and keep it to the end"
            + " (default: each one only for its stage, which needs less memory).")
    boolean resident;

    @Mixin
    Options options;

    @Override
    public void run() {
        options.apply();
        GenerationRequest request = request();
        StageMemory memory = options.verbose() ? new StageMemory() : null;
        try (Marble m = model.load(EnumSet.allOf(Component.class), options, quant.format(), !resident)) {
            if (memory != null) {
                memory.loaded();
            }
            AtomicBoolean cancelled = new AtomicBoolean();
            CountDownLatch finished = new CountDownLatch(1);
            // Ctrl-C: stop between steps and write nothing; the hook waits for the loop to notice.
            Thread hook = new Thread(() -> {
                cancelled.set(true);
                try {
                    finished.await(120, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            Runtime.getRuntime().addShutdownHook(hook);
            // However the run ends (done, cancelled, failed), the hook must not keep a JVM that is exiting
            // waiting for a loop that has already stopped.
            try {
                ProgressBar bar = quiet ? null : new ProgressBar(System.err, "generating");
                GenerationResult result;
                try {
                    result = m.generate(request, new GenerationListener() {
                        @Override
                        public boolean onStep(int image, int step, int total, double t) {
                            if (bar != null) {
                                bar.update(image * total + step, total * request.batchCount());
                            }
                            return !cancelled.get();
                        }

                        @Override
                        public void stageStarted(Stage stage) {
                            if (memory != null) {
                                memory.started();
                            }
                        }

                        @Override
                        public void stageFinished(Stage stage) {
                            if (memory != null) {
                                memory.finished(stage);
                            }
                        }
                    });
                } catch (GenerationCancelledException e) {
                    if (bar != null) {
                        bar.finish();
                    }
                    System.err.println("marble: cancelled; nothing written");
                    return;
                }
                if (bar != null) {
                    bar.finish();
                }
                if (cancelled.get()) {
                    return;
                }
                write(result.images());
                if (memory != null) {
                    System.err.println("marble: peak RSS " + memory);
                    if (!resident && !m.unusedKeys().isEmpty()) { // staged: known once each component has loaded
                        System.err.println("marble: " + m.unusedKeys().size() + " unused weights: " + m.unusedKeys());
                    }
                }
            } finally {
                finished.countDown();
                try {
                    Runtime.getRuntime().removeShutdownHook(hook);
                } catch (IllegalStateException e) {
                    // The JVM is already shutting down (Ctrl-C): the hook is running and now returns.
                }
            }
        }
    }

    /** The request these options describe (the drift test builds golden requests through it). */
    GenerationRequest request() {
        GenerationRequest.Builder b = GenerationRequest.builder().prompt(prompt).negativePrompt(negativePrompt)
                .steps(steps).cfgScale(cfgScale).guidanceRescale(guidanceRescale).sampler(sampler).size(width, height)
                .batchCount(batchCount).strength(strength);
        if (seed != null) {
            b.seed(seed);
        }
        if (initLatents != null) {
            try (Arena arena = Arena.ofConfined()) {
                Tensor t = TensorFiles.readF32(initLatents, "latents", arena, 4);
                b.initLatents(t.toFloatArray(), t.shape());
            }
        }
        if (initImage != null) {
            if (initImage.getFileName().toString().endsWith(".safetensors")) {
                try (Arena arena = Arena.ofConfined()) {
                    Tensor t = TensorFiles.readF32(initImage, "init_image", arena, 4);
                    b.initImage(t.toFloatArray(), t.size(1), t.size(2));
                }
            } else {
                int[] hw = new int[2];
                float[] px = Images.readRgb(initImage, hw);
                b.initImage(px, hw[0], hw[1]);
            }
        }
        return b.build();
    }

    private void write(List<GenerationResult.Image> images) {
        for (int i = 0; i < images.size(); i++) {
            GenerationResult.Image img = images.get(i);
            Path out = images.size() == 1 ? output : numbered(output, i);
            Png.write(out, img.width(), img.height(), img.rgb8(), Map.of("parameters", img.parameters()));
            System.err.println("marble: wrote " + out + " (seed " + img.seed() + ")");
            if (options.verbose()) {
                GenerationResult.Timings t = img.timings();
                System.err.printf(java.util.Locale.ROOT,
                        "marble: text encoder %.2f s, denoising %.2f s (%d steps, %.2f s/step), VAE decode %.2f s,"
                                + " loading %.2f s, total %.2f s, peak RSS %.0f MB%n",
                        t.textEncoder(), t.denoising(), t.steps(), t.denoising() / Math.max(1, t.steps()),
                        t.vaeDecode(), t.loading(), t.total(), BenchCommand.peakRssMb());
            }
        }
        if (saveTensors != null) {
            try (Arena arena = Arena.ofConfined()) {
                GenerationResult.Image first = images.get(0);
                int b = images.size();
                long[] ls = first.latentShape();
                float[] latents = new float[first.latents().length * b];
                float[] pixels = new float[first.pixels().length * b];
                for (int i = 0; i < b; i++) {
                    System.arraycopy(images.get(i).latents(), 0, latents, i * first.latents().length, first.latents().length);
                    System.arraycopy(images.get(i).pixels(), 0, pixels, i * first.pixels().length, first.pixels().length);
                }
                Map<String, Tensor> tensors = new LinkedHashMap<>();
                tensors.put("final_latents", Tensor.fromFloats(arena, latents, b, ls[1], ls[2], ls[3]));
                tensors.put("image", Tensor.fromFloats(arena, pixels, b, first.height(), first.width(), 3));
                SafetensorsWriter.write(saveTensors, tensors, Map.of("parameters", first.parameters()));
            }
        }
    }

    static Path numbered(Path p, int i) {
        String name = p.getFileName().toString();
        int dot = name.lastIndexOf('.');
        String n = dot > 0 ? name.substring(0, dot) + "-" + i + name.substring(dot) : name + "-" + i;
        return p.resolveSibling(n);
    }
}
