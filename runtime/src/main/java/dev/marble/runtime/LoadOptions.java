package dev.marble.runtime;

import dev.marble.tensors.quant.QuantFormat;
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
 * @param quant          quantize on load to this format, or null to load the weights as stored. The
 *                       loaded model then holds exactly the weights that {@code marble quantize --type}
 *                       with the default rules ({@code QuantRules.defaults}) would write: the UNet's and
 *                       text encoder's weights in {@code quant} (the UNet's 1×1 projections in q8_0
 *                       when {@code quant} has 4 bits), the VAE and the small or sensitive tensors in
 *                       F16. Nothing is written, and the quantized copies made while loading are freed
 *                       as each layer has packed its weights. A model that is already quantized is
 *                       refused with a one-line error, since quantizing it again would only add error.
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
        QuantFormat quant, boolean staged) {
    public LoadOptions {
        components = components == null || components.isEmpty() ? EnumSet.allOf(Component.class)
                : EnumSet.copyOf(components);
    }

    /** As stored, without quantizing on load; resident. */
    public LoadOptions(String variant, Path originalConfig, Path tokenizerDir, Set<Component> components) {
        this(variant, originalConfig, tokenizerDir, components, null, false);
    }

    /** Resident components. */
    public LoadOptions(String variant, Path originalConfig, Path tokenizerDir, Set<Component> components,
            QuantFormat quant) {
        this(variant, originalConfig, tokenizerDir, components, quant, false);
    }

    /** Everything, plain weights, resident. */
    public static LoadOptions defaults() {
        return new LoadOptions(null, null, null, null, null, false);
    }

    public LoadOptions withVariant(String v) {
        return new LoadOptions(v, originalConfig, tokenizerDir, components, quant, staged);
    }

    public LoadOptions withOriginalConfig(Path p) {
        return new LoadOptions(variant, p, tokenizerDir, components, quant, staged);
    }

    public LoadOptions withTokenizer(Path p) {
        return new LoadOptions(variant, originalConfig, p, components, quant, staged);
    }

    public LoadOptions withComponents(Set<Component> c) {
        return new LoadOptions(variant, originalConfig, tokenizerDir, c, quant, staged);
    }

    /** Quantize on load to {@code f} (q8_0, q4_0 or q4_k), or null to load the weights as stored. */
    public LoadOptions withQuant(QuantFormat f) {
        return new LoadOptions(variant, originalConfig, tokenizerDir, components, f, staged);
    }

    /** See {@link #staged()}: load each component for its stage only, or keep them all resident. */
    public LoadOptions withStaged(boolean s) {
        return new LoadOptions(variant, originalConfig, tokenizerDir, components, quant, s);
    }

    public boolean wants(Component c) {
        return components.contains(c);
    }
}
