package dev.marble.weights;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.tensors.MarbleException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * A pipeline folder in the diffusers layout ({@code save_pretrained}): {@code model_index.json} names
 * the components, each in its own sub-folder with a config and (for models) safetensors weights.
 *
 * <pre>
 * model_index.json                 {"_class_name": ..., "unet": ["diffusers", "UNet2DConditionModel"], ...}
 * unet/config.json                 diffusion_pytorch_model[.fp16].safetensors or a sharded index
 * vae/config.json                  idem
 * text_encoder/config.json         model[.fp16].safetensors or a sharded index
 * tokenizer/tokenizer_config.json  vocab.json, merges.txt
 * scheduler/scheduler_config.json
 * </pre>
 *
 * This class only locates and parses files; the sources it opens belong to the caller.
 */
public final class DiffusersModel {
    public static final String MODEL_INDEX = "model_index.json";
    public static final String UNET = "unet";
    public static final String VAE = "vae";
    public static final String TEXT_ENCODER = "text_encoder";
    public static final String TOKENIZER = "tokenizer";
    public static final String SCHEDULER = "scheduler";

    /** The variant tried by {@link Component#weights()} when the full-precision files are absent. */
    public static final String FP16 = "fp16";

    /** Config file names, in the order they are looked for. */
    private static final List<String> CONFIG_NAMES =
            List.of("config.json", "scheduler_config.json", "tokenizer_config.json");

    /** Weight file stems: diffusers models, then transformers models (the text encoder). */
    private static final List<String> WEIGHT_STEMS = List.of("diffusion_pytorch_model", "model");

    private final Path dir;
    private final JsonNode index;
    private final Map<String, Component> components;
    private final Set<String> nullComponents;

    private DiffusersModel(Path dir, JsonNode index, Map<String, Component> components, Set<String> nullComponents) {
        this.dir = dir;
        this.index = index;
        this.components = components;
        this.nullComponents = nullComponents;
    }

    /** Opens the pipeline folder {@code path} (or the folder of {@code path} if it names model_index.json). */
    public static DiffusersModel open(Path path) {
        Path dir = path.getFileName() != null && path.getFileName().toString().equals(MODEL_INDEX)
                && Files.isRegularFile(path) ? path.toAbsolutePath().getParent() : path;
        if (!Files.exists(dir)) {
            throw new MarbleException(dir + ": no such model folder");
        }
        if (!Files.isDirectory(dir)) {
            throw new MarbleException(dir + ": is a file, expected a diffusers model folder");
        }
        Path indexFile = dir.resolve(MODEL_INDEX);
        if (!Files.exists(indexFile)) {
            String hint = CONFIG_NAMES.stream().anyMatch(c -> Files.exists(dir.resolve(c)))
                    ? " (it looks like a single component folder)" : "";
            throw new MarbleException(dir + ": no " + MODEL_INDEX + ", not a diffusers pipeline folder" + hint);
        }
        JsonNode index = JsonFiles.readObject(indexFile);
        Map<String, Component> components = new LinkedHashMap<>();
        Set<String> nulls = new LinkedHashSet<>();
        for (Map.Entry<String, JsonNode> e : index.properties()) {
            String name = e.getKey();
            JsonNode v = e.getValue();
            // Entries starting with '_' are metadata; components are [library, class] pairs.
            if (name.startsWith("_") || !v.isArray() || v.size() != 2) {
                continue;
            }
            if (v.get(0).isNull() && v.get(1).isNull()) {
                nulls.add(name);
            } else if (v.get(0).isTextual() && v.get(1).isTextual()) {
                components.put(name, new Component(name, dir.resolve(name), v.get(0).asText(), v.get(1).asText()));
            } else {
                throw new MarbleException(indexFile + ": component '" + name + "' is " + v
                        + ", expected [library, class]");
            }
        }
        return new DiffusersModel(dir, index, Collections.unmodifiableMap(components),
                Collections.unmodifiableSet(nulls));
    }

    /** A lone component folder (config plus weights), e.g. a VAE to swap into a pipeline. */
    public static Component openComponent(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new MarbleException(dir + ": " + (Files.exists(dir) ? "is a file" : "no such folder")
                    + ", expected a model component folder");
        }
        Component c = new Component(dir.getFileName() == null ? dir.toString() : dir.getFileName().toString(),
                dir, null, null);
        JsonNode cls = c.config().get("_class_name");
        return cls != null && cls.isTextual() ? new Component(c.name, dir, null, cls.asText()) : c;
    }

    public Path dir() {
        return dir;
    }

    /** The parsed model_index.json. */
    public JsonNode modelIndex() {
        return index.deepCopy();
    }

    /** The pipeline class named by model_index.json ({@code _class_name}), or null if absent. */
    public String pipelineClass() {
        JsonNode c = index.get("_class_name");
        return c != null && c.isTextual() ? c.asText() : null;
    }

    /** Names of the components model_index.json lists (non-null entries), in file order. */
    public Set<String> componentNames() {
        return components.keySet();
    }

    public boolean has(String name) {
        return components.containsKey(name);
    }

    /** The component {@code name}; a one-line error if it is not listed or its folder is missing. */
    public Component component(String name) {
        Component c = components.get(name);
        Path indexFile = dir.resolve(MODEL_INDEX);
        if (c == null) {
            throw new MarbleException(indexFile + ": " + (nullComponents.contains(name)
                    ? "component '" + name + "' is null (not part of this pipeline)"
                    : "no component '" + name + "' (it lists " + String.join(", ", components.keySet()) + ")"));
        }
        if (!Files.isDirectory(c.dir)) {
            throw new MarbleException(c.dir + ": component folder is missing (" + MODEL_INDEX + " lists '"
                    + name + "')");
        }
        return c;
    }

    public Component unet() {
        return component(UNET);
    }

    public Component vae() {
        return component(VAE);
    }

    public Component textEncoder() {
        return component(TEXT_ENCODER);
    }

    public Component tokenizer() {
        return component(TOKENIZER);
    }

    public Component scheduler() {
        return component(SCHEDULER);
    }

    @Override
    public String toString() {
        return dir.toString();
    }

    /** One component folder: its config and its weights. */
    public static final class Component {
        private final String name;
        private final Path dir;
        private final String library;
        private final String className;

        private Component(String name, Path dir, String library, String className) {
            this.name = name;
            this.dir = dir;
            this.library = library;
            this.className = className;
        }

        public String name() {
            return name;
        }

        public Path dir() {
            return dir;
        }

        /** The library model_index.json names ("diffusers", "transformers"), or null for a lone folder. */
        public String library() {
            return library;
        }

        /** The class model_index.json names (e.g. "UNet2DConditionModel"), or null if unknown. */
        public String className() {
            return className;
        }

        /** The config file: config.json, scheduler_config.json or tokenizer_config.json, whichever exists. */
        public Path configFile() {
            for (String c : CONFIG_NAMES) {
                Path p = dir.resolve(c);
                if (Files.isRegularFile(p)) {
                    return p;
                }
            }
            throw new MarbleException(dir + ": no " + String.join(", ", CONFIG_NAMES.subList(0, 2)) + " or "
                    + CONFIG_NAMES.get(2) + " in component '" + name + "'");
        }

        /** The parsed config (a fresh copy each call). */
        public JsonNode config() {
            return JsonFiles.readObject(configFile());
        }

        /** The file {@code fileName} in this folder (e.g. "vocab.json"); a one-line error if it is missing. */
        public Path file(String fileName) {
            Path p = dir.resolve(fileName);
            if (!Files.isRegularFile(p)) {
                throw new MarbleException(p + ": no such file in component '" + name + "'");
            }
            return p;
        }

        /**
         * The full-precision weights, or the fp16 variant if that is all the folder has (a weights-only
         * difference: the model upcasts at load either way).
         */
        public TensorSource weights() {
            Path p = findWeights(null);
            if (p == null) {
                p = findWeights(FP16);
            }
            if (p == null) {
                throw new MarbleException("no " + expected("") + " or ." + FP16 + " variant in " + dir + describeFound());
            }
            return SafetensorsSource.open(p);
        }

        /** Exactly the weights of {@code variant} ("fp16", ...), or the full-precision ones if it is null. */
        public TensorSource weights(String variant) {
            Path p = findWeights(variant);
            if (p == null) {
                throw new MarbleException(variant == null
                        ? "no " + expected("") + " in " + dir + describeFound()
                        : "no " + variant + " variant (" + expected("." + variant) + ") in " + dir + describeFound());
            }
            return SafetensorsSource.open(p);
        }

        /** The weight file name this component's library writes, for messages. */
        private String expected(String variantPart) {
            String d = WEIGHT_STEMS.get(0) + variantPart + ".safetensors";
            String t = WEIGHT_STEMS.get(1) + variantPart + ".safetensors";
            if ("transformers".equals(library)) {
                return t;
            }
            return "diffusers".equals(library) ? d : d + " or " + t;
        }

        /** Whether weights of {@code variant} (null: full precision) exist. */
        public boolean hasWeights(String variant) {
            return findWeights(variant) != null;
        }

        /**
         * The file that {@link #weights(String)} opens: a single safetensors file or a sharded index, or
         * null. The variant index is spelled {@code stem.safetensors.index.fp16.json} by diffusers and
         * transformers; {@code stem.fp16.safetensors.index.json} is accepted as well.
         */
        public Path findWeights(String variant) {
            String v = variant == null ? "" : "." + variant;
            List<String> candidates = new ArrayList<>();
            for (String stem : WEIGHT_STEMS) {
                candidates.add(stem + v + ".safetensors");
            }
            for (String stem : WEIGHT_STEMS) {
                if (variant == null) {
                    candidates.add(stem + ".safetensors" + SafetensorsSource.INDEX_SUFFIX);
                } else {
                    candidates.add(stem + ".safetensors.index" + v + ".json");
                    candidates.add(stem + v + ".safetensors" + SafetensorsSource.INDEX_SUFFIX);
                }
            }
            for (String c : candidates) {
                Path p = dir.resolve(c);
                if (Files.isRegularFile(p)) {
                    return p;
                }
            }
            return null;
        }

        /** "; found: a, b" listing weight-like files, or a note that the folder has none. */
        private String describeFound() {
            List<String> found = new ArrayList<>();
            try (Stream<Path> s = Files.list(dir)) {
                s.map(p -> p.getFileName().toString())
                        .filter(f -> f.endsWith(".safetensors") || f.endsWith(".json") && f.contains(".index")
                                || f.endsWith(".bin") || f.endsWith(".ckpt") || f.endsWith(".pt")
                                || f.endsWith(".pth"))
                        .sorted().forEach(found::add);
            } catch (IOException e) {
                return "";
            }
            if (found.isEmpty()) {
                return " (no weight files at all)";
            }
            boolean onlyPickles = found.stream().noneMatch(f -> f.endsWith(".safetensors") || f.endsWith(".json"));
            return "; found " + String.join(", ", found)
                    + (onlyPickles ? " (PyTorch pickle weights are not read: convert them to safetensors)" : "");
        }

        @Override
        public String toString() {
            return name + " (" + dir + ")";
        }
    }
}
