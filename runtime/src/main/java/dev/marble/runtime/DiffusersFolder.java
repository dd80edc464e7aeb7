package dev.marble.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.tensors.MarbleException;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.TensorSource;
import dev.marble.weights.quant.QuantizedSource;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A diffusers model folder: {@code model_index.json} plus {@code unet/}, {@code vae/},
 * {@code text_encoder/}, {@code tokenizer/} and {@code scheduler/}. Weights are
 * {@code <stem>.safetensors}, the variant {@code <stem>.<variant>.safetensors}, or shards listed in
 * {@code <stem>.safetensors.index[.<variant>].json}.
 */
final class DiffusersFolder implements ModelFiles {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path dir;
    private final String variant;
    private final Path tokenizer;
    private final Map<Component, TensorSource> open = new EnumMap<>(Component.class);

    private DiffusersFolder(Path dir, String variant, Path tokenizer) {
        this.dir = dir;
        this.variant = variant;
        this.tokenizer = tokenizer;
    }

    static DiffusersFolder open(Path dir, LoadOptions options) {
        if (!Files.isRegularFile(dir.resolve("model_index.json"))) {
            throw new MarbleException(dir + ": not a diffusers model folder (no model_index.json)");
        }
        readJson(dir.resolve("model_index.json"));
        return new DiffusersFolder(dir, options.variant(), options.tokenizerDir());
    }

    @Override
    public String name() {
        return dir.toAbsolutePath().normalize().getFileName().toString();
    }

    @Override
    public JsonNode config(Component c) {
        Path sub = component(c);
        return readJson(sub.resolve(c == Component.SCHEDULER ? "scheduler_config.json" : "config.json"));
    }

    @Override
    public synchronized TensorSource weights(Component c) {
        TensorSource s = open.get(c);
        if (s == null) {
            s = openWeights(c);
            open.put(c, s);
        }
        return s;
    }

    private TensorSource openWeights(Component c) {
        Path sub = component(c);
        String stem = c == Component.TEXT_ENCODER ? "model" : "diffusion_pytorch_model";
        String v = variant == null ? "" : "." + variant;
        Path single = sub.resolve(stem + v + ".safetensors");
        if (Files.isRegularFile(single)) {
            return quantizedAware(SafetensorsSource.open(single));
        }
        Path index = sub.resolve(stem + ".safetensors.index" + v + ".json");
        if (Files.isRegularFile(index)) {
            return quantizedAware(openSharded(index));
        }
        throw new MarbleException(sub + ": no " + single.getFileName() + " or " + index.getFileName()
                + (variant == null ? "" : " (variant " + variant + ")"));
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

    private static SafetensorsSource openSharded(Path index) {
        JsonNode map = readJson(index).path("weight_map");
        if (!map.isObject() || map.isEmpty()) {
            throw new MarbleException(index + ": no weight_map");
        }
        Set<String> files = new LinkedHashSet<>();
        for (Iterator<JsonNode> it = map.elements(); it.hasNext(); ) {
            files.add(it.next().asText());
        }
        List<Path> paths = new ArrayList<>();
        for (String f : files) {
            Path p = index.resolveSibling(f);
            if (!Files.isRegularFile(p)) {
                throw new MarbleException(index + ": shard " + f + " is missing");
            }
            paths.add(p);
        }
        SafetensorsSource src = SafetensorsSource.open(paths, index.getParent().toString());
        for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!src.contains(e.getKey())) {
                src.close();
                throw new MarbleException(index + ": tensor '" + e.getKey() + "' is not in " + e.getValue().asText());
            }
        }
        return src;
    }

    @Override
    public Path tokenizerDir() {
        return tokenizer != null ? tokenizer : component(Component.TOKENIZER);
    }

    @Override
    public Path hashFile() {
        Path sub = component(Component.UNET);
        String v = variant == null ? "" : "." + variant;
        Path single = sub.resolve("diffusion_pytorch_model" + v + ".safetensors");
        return Files.isRegularFile(single) ? single : sub.resolve("diffusion_pytorch_model.safetensors.index" + v + ".json");
    }

    private Path component(Component c) {
        Path sub = dir.resolve(c.folder());
        if (!Files.isDirectory(sub)) {
            throw new MarbleException(dir + ": missing the " + c.folder() + "/ folder");
        }
        return sub;
    }

    static JsonNode readJson(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new MarbleException(file + ": missing");
        }
        try {
            JsonNode n = JSON.readTree(file.toFile());
            if (n == null || !n.isObject()) {
                throw new MarbleException(file + ": not a JSON object");
            }
            return n;
        } catch (IOException e) {
            String msg = e.getMessage() == null ? e.toString() : e.getMessage().lines().findFirst().orElse("");
            throw new MarbleException(file + ": invalid JSON: " + msg);
        }
    }

    @Override
    public synchronized void close() {
        open.values().forEach(TensorSource::close);
        open.clear();
    }
}
