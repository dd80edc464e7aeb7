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
 */
public record LoadOptions(String variant, Path originalConfig, Path tokenizerDir, Set<Component> components) {
    public LoadOptions {
        components = components == null || components.isEmpty() ? EnumSet.allOf(Component.class)
                : EnumSet.copyOf(components);
    }

    /** Everything, plain weights. */
    public static LoadOptions defaults() {
        return new LoadOptions(null, null, null, null);
    }

    public LoadOptions withVariant(String v) {
        return new LoadOptions(v, originalConfig, tokenizerDir, components);
    }

    public LoadOptions withOriginalConfig(Path p) {
        return new LoadOptions(variant, p, tokenizerDir, components);
    }

    public LoadOptions withTokenizer(Path p) {
        return new LoadOptions(variant, originalConfig, p, components);
    }

    public LoadOptions withComponents(Set<Component> c) {
        return new LoadOptions(variant, originalConfig, tokenizerDir, c);
    }

    public boolean wants(Component c) {
        return components.contains(c);
    }
}
