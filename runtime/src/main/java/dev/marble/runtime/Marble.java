package dev.marble.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.runtime.clip.ClipTextConfig;
import dev.marble.runtime.clip.ClipTextModel;
import dev.marble.runtime.clip.ClipTokenizer;
import dev.marble.runtime.schedulers.SchedulerConfig;
import dev.marble.runtime.unet.UNet2DConditionModel;
import dev.marble.runtime.unet.UNetConfig;
import dev.marble.runtime.vae.AutoencoderKL;
import dev.marble.runtime.vae.AutoencoderKLConfig;
import dev.marble.tensors.MarbleException;
import dev.marble.weights.TensorSource;
import dev.marble.weights.WeightScope;
import dev.marble.weights.quant.QuantRules;
import dev.marble.weights.quant.QuantizingSource;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * A loaded Stable Diffusion model: load once, then generate many times, from many threads.
 *
 * <pre>{@code
 * try (var model = Marble.load(path)) {
 *     var result = model.generate(GenerationRequest.builder().prompt("a red circle").seed(42).build(),
 *             GenerationListener.NONE);
 * }
 * }</pre>
 *
 * <p>After loading, the model is immutable: weights are packed into memory owned by the model and
 * the files are closed. Each generation owns its scratch memory, so concurrent generations do not
 * interfere. {@link #close()} frees the weights; no generation may run then.
 */
public final class Marble implements AutoCloseable {
    private final Arena arena;
    private final String name;
    private final Path hashFile;
    private final ClipTokenizer tokenizer;
    private final ClipTextModel textEncoder;
    private final UNet2DConditionModel unet;
    private final AutoencoderKL vae;
    private final SchedulerConfig schedulerConfig;
    private final Set<String> unusedKeys;
    private final int sampleSize;
    private volatile String hash;

    private Marble(Arena arena, String name, Path hashFile, ClipTokenizer tokenizer, ClipTextModel textEncoder,
            UNet2DConditionModel unet, AutoencoderKL vae, SchedulerConfig schedulerConfig, Set<String> unusedKeys,
            int sampleSize) {
        this.arena = arena;
        this.name = name;
        this.hashFile = hashFile;
        this.tokenizer = tokenizer;
        this.textEncoder = textEncoder;
        this.unet = unet;
        this.vae = vae;
        this.schedulerConfig = schedulerConfig;
        this.unusedKeys = unusedKeys;
        this.sampleSize = sampleSize;
    }

    /** Loads a diffusers folder or a single-file checkpoint, all components, plain weights. */
    public static Marble load(Path path) {
        return load(path, LoadOptions.defaults());
    }

    /** Loads the components {@code options} asks for. */
    public static Marble load(Path path, LoadOptions options) {
        Arena arena = Arena.ofShared();
        try (ModelFiles files = ModelFiles.open(path, options)) {
            Set<String> unused = new TreeSet<>();
            ClipTokenizer tokenizer = options.wants(Component.TOKENIZER) ? ClipTokenizer.load(files.tokenizerDir()) : null;
            ClipTextModel te = options.wants(Component.TEXT_ENCODER) ? component(files, Component.TEXT_ENCODER, options,
                    unused, w -> ClipTextModel.load(ClipTextConfig.fromJson(files.config(Component.TEXT_ENCODER)),
                            w.at("text_model"), arena)) : null;
            UNet2DConditionModel unet = null;
            int sampleSize = 64;
            if (options.wants(Component.UNET)) {
                JsonNode config = files.config(Component.UNET);
                unet = component(files, Component.UNET, options, unused,
                        w -> UNet2DConditionModel.load(UNetConfig.parse(config, "unet config"), w, arena));
                sampleSize = config.path("sample_size").asInt(64);
            }
            AutoencoderKL vae = options.wants(Component.VAE) ? component(files, Component.VAE, options, unused,
                    w -> AutoencoderKL.load(AutoencoderKLConfig.fromJson(files.config(Component.VAE)), w, arena)) : null;
            SchedulerConfig sched = options.wants(Component.SCHEDULER)
                    ? SchedulerConfig.of(files.config(Component.SCHEDULER)) : null;
            return new Marble(arena, files.name(), files.hashFile(), tokenizer, te, unet, vae, sched,
                    Set.copyOf(unused), sampleSize);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /**
     * Builds one component from its weights, quantized on load when {@code options} ask for it (the
     * quantized copies are freed before this returns); adds the keys it did not read to {@code unused}.
     */
    private static <T> T component(ModelFiles files, Component c, LoadOptions options, Set<String> unused,
            Function<WeightScope, T> build) {
        TensorSource src = files.weights(c);
        QuantizingSource q = options.quant() == null ? null
                : QuantizingSource.wrap(src, c.folder(), QuantRules.defaults(options.quant()));
        try {
            WeightScope w = WeightScope.root(q != null ? q : src);
            T model = build.apply(w);
            unused.addAll(w.unusedKeys());
            return model;
        } finally {
            if (q != null) {
                q.close();
            }
        }
    }

    /**
     * Whether this build carries a default model: a small model bundled in the jar (trained on
     * images of coloured shapes; see tools/train) that {@link #loadDefault()} loads.
     */
    public static boolean hasDefaultModel() {
        return BundledModel.present(Marble.class.getClassLoader(), BundledModel.ROOT);
    }

    /** Loads the bundled default model, all components; see {@link #loadDefault(LoadOptions)}. */
    public static Marble loadDefault() {
        return loadDefault(LoadOptions.defaults());
    }

    /**
     * Loads the bundled default model, a diffusers folder inside the jar. Its files are extracted
     * once to the user's cache directory ({@code marble.cache}, else {@code $XDG_CACHE_HOME/marble},
     * else {@code ~/.cache/marble}), or to a temporary directory when that is not writable, and
     * memory-mapped from there as any model folder; later runs reuse the copy.
     *
     * @throws MarbleException if the build has no bundled model ({@link #hasDefaultModel()})
     */
    public static Marble loadDefault(LoadOptions options) {
        return load(BundledModel.folder(Marble.class.getClassLoader(), BundledModel.ROOT, BundledModel.defaultCache()),
                options);
    }

    /** Generates {@code request.batchCount()} images. */
    public GenerationResult generate(GenerationRequest request, GenerationListener listener) {
        return new StableDiffusionPipeline(this).run(request, listener == null ? GenerationListener.NONE : listener);
    }

    /** The model's name: its folder or file name. */
    public String name() {
        return name;
    }

    /**
     * The first 10 hex digits of the SHA-256 of the checkpoint file (A1111's "AutoV2" hash), or of the
     * UNet weights file of a diffusers folder. Computed on first use.
     */
    public String hash() {
        String h = hash;
        if (h == null) {
            h = sha256Prefix(hashFile);
            hash = h;
        }
        return h;
    }

    private static String sha256Prefix(Path file) {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 20];
            for (int r; (r = in.read(buf)) > 0; ) {
                md.update(buf, 0, r);
            }
            return HexFormat.of().formatHex(md.digest()).substring(0, 10);
        } catch (IOException e) {
            throw new MarbleException(file + ": cannot read to hash: " + e.getMessage());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The UNet's config sample_size: latents of this size make the model's default image size. */
    public int sampleSize() {
        return sampleSize;
    }

    /** Weight keys that no component read (EMA copies, extra buffers), for --verbose. */
    public Set<String> unusedKeys() {
        return unusedKeys;
    }

    public ClipTokenizer tokenizer() {
        return require(tokenizer, Component.TOKENIZER);
    }

    public ClipTextModel textEncoder() {
        return require(textEncoder, Component.TEXT_ENCODER);
    }

    public UNet2DConditionModel unet() {
        return require(unet, Component.UNET);
    }

    public AutoencoderKL vae() {
        return require(vae, Component.VAE);
    }

    public SchedulerConfig schedulerConfig() {
        return require(schedulerConfig, Component.SCHEDULER);
    }

    private static <T> T require(T part, Component c) {
        if (part == null) {
            throw new MarbleException("the " + c.folder() + " was not loaded");
        }
        return part;
    }

    @Override
    public void close() {
        arena.close();
    }
}
