package dev.marble.tools;

import dev.marble.runtime.Component;
import dev.marble.runtime.LoadOptions;
import dev.marble.runtime.Marble;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.quant.QuantFormat;
import java.nio.file.Path;
import java.util.Set;
import picocli.CommandLine.Option;

/** How a command finds and loads its model. */
final class ModelOptions {
    @Option(names = {"-m", "--model"}, paramLabel = "M",
            description = "A diffusers folder or a single-file .safetensors checkpoint (default: the model bundled in the jar, if any).")
    Path model;

    @Option(names = "--variant", paramLabel = "NAME", description = "Weights variant of a diffusers folder, e.g. fp16.")
    String variant;

    @Option(names = "--config", paramLabel = "YAML", description = "Original config of a single-file checkpoint (default: <name>.yaml beside it).")
    Path config;

    @Option(names = "--tokenizer", paramLabel = "DIR", description = "Tokenizer folder (vocab.json, merges.txt) for a single-file checkpoint.")
    Path tokenizer;

    /** Loads the components, resident. */
    Marble load(Set<Component> components, Options common) {
        return load(components, common, null);
    }

    /** Loads {@code components}, resident, quantized on load to {@code quant} unless it is null. */
    Marble load(Set<Component> components, Options common, QuantFormat quant) {
        return load(components, common, quant, false);
    }

    /**
     * Loads {@code components}, quantized on load to {@code quant} unless it is null; with {@code staged}
     * only their configs, each component then being loaded for its stage (see LoadOptions.staged).
     */
    Marble load(Set<Component> components, Options common, QuantFormat quant, boolean staged) {
        if (variant != null && variant.isBlank()) {
            throw new MarbleException("--variant: empty name");
        }
        LoadOptions options = new LoadOptions(variant, config, tokenizer, components, quant, staged);
        Marble m;
        if (model != null) {
            m = Marble.load(model, options);
        } else if (Marble.hasDefaultModel()) {
            m = Marble.loadDefault(options);
        } else {
            throw new MarbleException("--model is required: this build has no bundled default model");
        }
        if (common.verbose() && !m.unusedKeys().isEmpty()) {
            System.err.println("marble: " + m.unusedKeys().size() + " unused weights: " + m.unusedKeys());
        }
        return m;
    }
}
