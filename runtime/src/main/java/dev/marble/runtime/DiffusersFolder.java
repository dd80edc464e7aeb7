package dev.marble.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.weights.DiffusersModel;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.TensorSource;
import dev.marble.weights.quant.QuantizedSource;
import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Map;

/** A diffusers model folder seen as {@link ModelFiles}; the folder layout itself is {@link DiffusersModel}'s. */
final class DiffusersFolder implements ModelFiles {
    private final DiffusersModel model;
    private final String variant;
    private final Path tokenizer;
    private final Map<Component, TensorSource> open = new EnumMap<>(Component.class);

    private DiffusersFolder(DiffusersModel model, String variant, Path tokenizer) {
        this.model = model;
        this.variant = variant;
        this.tokenizer = tokenizer;
    }

    static DiffusersFolder open(Path dir, LoadOptions options) {
        return new DiffusersFolder(DiffusersModel.open(dir), options.variant(), options.tokenizerDir());
    }

    @Override
    public String name() {
        return model.dir().toAbsolutePath().normalize().getFileName().toString();
    }

    @Override
    public JsonNode config(Component c) {
        return model.component(c.folder()).config();
    }

    /** The requested variant exactly, or else the full-precision weights (fp16 if that is all there is). */
    @Override
    public synchronized TensorSource weights(Component c) {
        return open.computeIfAbsent(c, k -> {
            DiffusersModel.Component part = model.component(k.folder());
            TensorSource src = variant == null ? part.weights() : part.weights(variant);
            return src instanceof SafetensorsSource s ? quantizedAware(s) : src;
        });
    }

    /** Files written by {@code marble quantize} are read through their checked quantized view. */
    private static TensorSource quantizedAware(SafetensorsSource src) {
        if (!QuantizedSource.isQuantized(src.metadata())) {
            return src;
        }
        try {
            return QuantizedSource.wrap(src, src.metadata());
        } catch (RuntimeException e) {
            src.close();
            throw e;
        }
    }

    @Override
    public Path tokenizerDir() {
        return tokenizer != null ? tokenizer : model.tokenizer().dir();
    }

    @Override
    public Path hashFile() {
        DiffusersModel.Component unet = model.unet();
        Path p = unet.findWeights(variant);
        return p != null ? p : unet.findWeights(DiffusersModel.FP16);
    }

    @Override
    public synchronized void close() {
        open.values().forEach(TensorSource::close);
        open.clear();
    }
}
