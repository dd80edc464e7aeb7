package dev.marble.runtime;

import java.nio.file.Path;
import java.util.EnumSet;
import java.util.Set;

/**
 * How to load a model.
 *
 * @param variant        weights variant of a diffusers folder ("fp16" loads {@code *.fp16.safetensors},
 *                       as diffusers' {@code variant="fp16"}), or null for the plain files
 * @param originalConfig original-config YAML of a single-file checkpoint, or null for {@code <name>.yaml} beside it
 * @param tokenizerDir   tokenizer folder, or null for the model's own (a single file looks beside itself)
 * @param components     which parts to load; a stage command loads only the one it runs
 * @param staged         false (the default): every component is loaded by {@link Marble#load} and stays
 *                       resident until the model is closed, which is what a service generating many
 *                       images wants. True: {@link Marble#load} reads only the configs and the
 *                       tokenizer; each generation loads the text encoder, the UNet and the VAE decoder
 *                       (and, for img2img, the VAE encoder) when their stage starts and frees them when
 *                       it ends, so the peak memory is that of the largest stage, not of the whole
 *                       model, at the cost of reading and packing the weights again every generation.
 *                       For one-shot runs (the CLI's {@code generate}). The accessors of the weighted
 *                       components ({@link Marble#unet()} ...) then fail.
 */
public record LoadOptions(String variant, Path originalConfig, Path tokenizerDir, Set<Component> components,
        boolean staged) {
    public LoadOptions {
        components = components == null || components.isEmpty() ? EnumSet.allOf(Component.class)
                : EnumSet.copyOf(components);
    }

    /** Resident components. */
    public LoadOptions(String variant, Path originalConfig, Path tokenizerDir, Set<Component> components) {
        this(variant, originalConfig, tokenizerDir, components, false);
    }

    /** Everything, plain weights, resident. */
    public static LoadOptions defaults() {
        return new LoadOptions(null, null, null, null, false);
    }

    public LoadOptions withVariant(String v) {
        return new LoadOptions(v, originalConfig, tokenizerDir, components, staged);
    }

    public LoadOptions withOriginalConfig(Path p) {
        return new LoadOptions(variant, p, tokenizerDir, components, staged);
    }

    public LoadOptions withTokenizer(Path p) {
        return new LoadOptions(variant, originalConfig, p, components, staged);
    }

    public LoadOptions withComponents(Set<Component> c) {
        return new LoadOptions(variant, originalConfig, tokenizerDir, c, staged);
    }

    /** See {@link #staged()}: load each component for its stage only, or keep them all resident. */
    public LoadOptions withStaged(boolean s) {
        return new LoadOptions(variant, originalConfig, tokenizerDir, components, s);
    }

    public boolean wants(Component c) {
        return components.contains(c);
    }
}
