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
import dev.marble.tensors.NativeMemory;
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
import java.util.Collections;
import java.util.HexFormat;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
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
 *
 * <p>With {@link LoadOptions#staged()}, loading reads only the configs and the tokenizer; each weighted
 * component is loaded when a generation's stage starts and freed when it ends, so the peak memory is
 * that of the largest stage instead of the whole model (see {@link LoadOptions}).
 */
public final class Marble implements AutoCloseable {
    private final Arena arena;
    private final String name;
    private final Path hashFile;
    private final ClipTokenizer tokenizer;
    private final ComponentSlot<ClipTextModel> textEncoder;
    private final ComponentSlot<UNet2DConditionModel> unet;
    private final UNetConfig unetConfig;
    private final ComponentSlot<AutoencoderKL> vae;
    private final ComponentSlot<AutoencoderKL> vaeDecoder;
    private final ComponentSlot<AutoencoderKL> vaeEncoder;
    private final AutoencoderKLConfig vaeConfig;
    private final SchedulerConfig schedulerConfig;
    private final Set<String> unusedKeys;
    private final int sampleSize;
    private volatile String hash;

    private Marble(Builder b) {
        this.arena = b.arena;
        this.name = b.name;
        this.hashFile = b.hashFile;
        this.tokenizer = b.tokenizer;
        this.textEncoder = b.textEncoder;
        this.unet = b.unet;
        this.unetConfig = b.unetConfig;
        this.vae = b.vae;
        this.vaeDecoder = b.vaeDecoder;
        this.vaeEncoder = b.vaeEncoder;
        this.vaeConfig = b.vaeConfig;
        this.schedulerConfig = b.schedulerConfig;
        this.unusedKeys = b.unusedKeys;
        this.sampleSize = b.sampleSize;
    }

    /** What {@link #load} gathers before the model is built. */
    private static final class Builder {
        Arena arena;
        String name;
        Path hashFile;
        ClipTokenizer tokenizer;
        ComponentSlot<ClipTextModel> textEncoder;
        ComponentSlot<UNet2DConditionModel> unet;
        UNetConfig unetConfig;
        ComponentSlot<AutoencoderKL> vae;
        ComponentSlot<AutoencoderKL> vaeDecoder;
        ComponentSlot<AutoencoderKL> vaeEncoder;
        AutoencoderKLConfig vaeConfig;
        SchedulerConfig schedulerConfig;
        Set<String> unusedKeys;
        int sampleSize = 64;
    }

    /** Loads a diffusers folder or a single-file checkpoint, all components, plain weights. */
    public static Marble load(Path path) {
        return load(path, LoadOptions.defaults());
    }

    /** Loads the components {@code options} asks for (or, when staged, only their configs). */
    public static Marble load(Path path, LoadOptions options) {
        Arena arena = Arena.ofShared();
        try (ModelFiles files = ModelFiles.open(path, options)) {
            Builder b = new Builder();
            b.arena = arena;
            b.name = files.name();
            b.hashFile = files.hashFile();
            // Staged: weights are read again by each stage, and their unused keys are added as it loads.
            Set<String> unused = options.staged() ? ConcurrentHashMap.newKeySet() : new TreeSet<>();
            b.tokenizer = options.wants(Component.TOKENIZER) ? ClipTokenizer.load(files.tokenizerDir()) : null;
            if (options.wants(Component.TEXT_ENCODER)) {
                ClipTextConfig c = ClipTextConfig.fromJson(files.config(Component.TEXT_ENCODER));
                b.textEncoder = options.staged()
                        ? ComponentSlot.staged("text_encoder", a -> staged(path, options, f -> component(f,
                                Component.TEXT_ENCODER, options, unused, w -> ClipTextModel.load(c, w.at("text_model"), a))))
                        : ComponentSlot.resident("text_encoder", component(files, Component.TEXT_ENCODER, options,
                                unused, w -> ClipTextModel.load(c, w.at("text_model"), arena)));
            }
            if (options.wants(Component.UNET)) {
                JsonNode config = files.config(Component.UNET);
                UNetConfig c = UNetConfig.parse(config, "unet config");
                b.unetConfig = c;
                b.sampleSize = config.path("sample_size").asInt(64);
                b.unet = options.staged()
                        ? ComponentSlot.staged("unet", a -> staged(path, options, f -> component(f, Component.UNET,
                                options, unused, w -> UNet2DConditionModel.load(c, w, a))))
                        : ComponentSlot.resident("unet", component(files, Component.UNET, options, unused,
                                w -> UNet2DConditionModel.load(c, w, arena)));
            }
            if (options.wants(Component.VAE)) {
                AutoencoderKLConfig c = AutoencoderKLConfig.fromJson(files.config(Component.VAE));
                b.vaeConfig = c;
                if (options.staged()) {
                    // Each half alone: decoder.* and post_quant_conv.*, or encoder.* and quant_conv.*.
                    b.vaeDecoder = ComponentSlot.staged("vae decoder", a -> staged(path, options,
                            f -> component(f, Component.VAE, options, unused, w -> AutoencoderKL.loadDecoder(c, w, a),
                                    "encoder.", "quant_conv.")));
                    b.vaeEncoder = ComponentSlot.staged("vae encoder", a -> staged(path, options,
                            f -> component(f, Component.VAE, options, unused, w -> AutoencoderKL.loadEncoder(c, w, a),
                                    "decoder.", "post_quant_conv.")));
                    b.vae = b.vaeDecoder; // only for vae()'s message: the whole VAE is never loaded staged
                } else {
                    AutoencoderKL vae = component(files, Component.VAE, options, unused,
                            w -> AutoencoderKL.load(c, w, arena));
                    b.vae = ComponentSlot.resident("vae", vae);
                    b.vaeDecoder = b.vae;
                    b.vaeEncoder = b.vae;
                }
            }
            b.schedulerConfig = options.wants(Component.SCHEDULER)
                    ? SchedulerConfig.of(files.config(Component.SCHEDULER)) : null;
            b.unusedKeys = unused;
            return new Marble(b);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** Opens the model's files for one staged component and closes them (unmapping every page) after. */
    private static <T> T staged(Path path, LoadOptions options, Function<ModelFiles, T> load) {
        try (ModelFiles files = ModelFiles.open(path, options)) {
            return load.apply(files);
        }
    }

    /**
     * Builds one component from its weights, quantized on load when {@code options} ask for it (the
     * quantized copies are freed before this returns); adds the keys it did not read to {@code unused},
     * except those under {@code notLoaded} (the other half of a VAE loaded in halves).
     */
    private static <T> T component(ModelFiles files, Component c, LoadOptions options, Set<String> unused,
            Function<WeightScope, T> build, String... notLoaded) {
        TensorSource src = files.weights(c);
        QuantizingSource q = options.quant() == null ? null
                : QuantizingSource.wrap(src, c.folder(), QuantRules.defaults(options.quant()));
        try {
            WeightScope w = WeightScope.root(q != null ? q : src);
            T model = build.apply(w);
            for (String k : w.unusedKeys()) {
                boolean skipped = false;
                for (String prefix : notLoaded) {
                    skipped |= k.startsWith(prefix);
                }
                if (!skipped) {
                    unused.add(k);
                }
            }
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

    /**
     * Weight keys that no component read (EMA copies, extra buffers), for --verbose. When staged, a
     * component's keys are known once a generation has loaded it.
     */
    public Set<String> unusedKeys() {
        return Collections.unmodifiableSet(new TreeSet<>(unusedKeys));
    }

    public ClipTokenizer tokenizer() {
        return require(tokenizer, Component.TOKENIZER);
    }

    /** The resident text encoder; fails when the model was loaded staged. */
    public ClipTextModel textEncoder() {
        return require(textEncoder, Component.TEXT_ENCODER).resident();
    }

    /** The resident UNet; fails when the model was loaded staged. */
    public UNet2DConditionModel unet() {
        return require(unet, Component.UNET).resident();
    }

    /** The resident VAE; fails when the model was loaded staged. */
    public AutoencoderKL vae() {
        return require(vae, Component.VAE).resident();
    }

    public SchedulerConfig schedulerConfig() {
        return require(schedulerConfig, Component.SCHEDULER);
    }

    ComponentSlot<ClipTextModel> textEncoderSlot() {
        return require(textEncoder, Component.TEXT_ENCODER);
    }

    ComponentSlot<UNet2DConditionModel> unetSlot() {
        return require(unet, Component.UNET);
    }

    UNetConfig unetConfig() {
        return require(unetConfig, Component.UNET);
    }

    ComponentSlot<AutoencoderKL> vaeDecoderSlot() {
        return require(vaeDecoder, Component.VAE);
    }

    ComponentSlot<AutoencoderKL> vaeEncoderSlot() {
        return require(vaeEncoder, Component.VAE);
    }

    AutoencoderKLConfig vaeConfig() {
        return require(vaeConfig, Component.VAE);
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
        NativeMemory.releaseFreed();
    }
}
