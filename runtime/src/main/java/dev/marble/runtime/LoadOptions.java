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
 */
public record LoadOptions(String variant, Path originalConfig, Path tokenizerDir, Set<Component> components,
        QuantFormat quant) {
    public LoadOptions {
        components = components == null || components.isEmpty() ? EnumSet.allOf(Component.class)
                : EnumSet.copyOf(components);
    }

    /** As stored, without quantizing on load. */
    public LoadOptions(String variant, Path originalConfig, Path tokenizerDir, Set<Component> components) {
        this(variant, originalConfig, tokenizerDir, components, null);
    }

    /** Everything, plain weights. */
    public static LoadOptions defaults() {
        return new LoadOptions(null, null, null, null, null);
    }

    public LoadOptions withVariant(String v) {
        return new LoadOptions(v, originalConfig, tokenizerDir, components, quant);
    }

    public LoadOptions withOriginalConfig(Path p) {
        return new LoadOptions(variant, p, tokenizerDir, components, quant);
    }

    public LoadOptions withTokenizer(Path p) {
        return new LoadOptions(variant, originalConfig, p, components, quant);
    }

    public LoadOptions withComponents(Set<Component> c) {
        return new LoadOptions(variant, originalConfig, tokenizerDir, c, quant);
    }

    /** Quantize on load to {@code f} (q8_0, q4_0 or q4_k), or null to load the weights as stored. */
    public LoadOptions withQuant(QuantFormat f) {
        return new LoadOptions(variant, originalConfig, tokenizerDir, components, f);
    }

    public boolean wants(Component c) {
        return components.contains(c);
    }
}
