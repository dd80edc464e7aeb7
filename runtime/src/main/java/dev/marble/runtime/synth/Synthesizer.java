package dev.marble.runtime.synth;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Numerics;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import dev.marble.weights.SafetensorsWriter;
import dev.marble.weights.ldm.LdmNames;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;

/**
 * Writes a full-size Stable Diffusion model with random weights and the real configs, for
 * benchmarks, memory tests and deployment checks: {@code marble synth}. Weights are uniform with the
 * variance PyTorch's default initialisation gives (1 / fan-in), norms start at identity, so
 * activations keep a sane scale through the network. Deterministic: each tensor's values follow from
 * its name.
 */
public final class Synthesizer {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String[] FILES = {
        "model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
        "scheduler/scheduler_config.json",
    };

    private Synthesizer() {
    }

    /** The built-in families: sd15 and sd21. */
    public static boolean knows(String like) {
        return like.equals("sd15") || like.equals("sd21");
    }

    /**
     * Writes a diffusers folder at {@code out} shaped like {@code like}: a built-in family (sd15, sd21)
     * or an existing diffusers folder whose configs (and tokenizer) are copied. {@code progress} hears
     * each component's name.
     */
    public static void writeFolder(String like, DType dtype, Path out, java.util.function.Consumer<String> progress) {
        if (dtype != DType.F16 && dtype != DType.F32 && dtype != DType.BF16) {
            throw new MarbleException("synth: dtype must be f16, bf16 or f32, got " + dtype);
        }
        Path from = Path.of(like);
        boolean folder = !knows(like);
        if (folder && !Files.isRegularFile(from.resolve("model_index.json"))) {
            throw new MarbleException("synth: --like must be sd15, sd21 or a diffusers folder; " + like + " is neither");
        }
        try {
            for (String f : FILES) {
                Path target = out.resolve(f);
                Files.createDirectories(target.getParent());
                Files.write(target, folder ? Files.readAllBytes(from.resolve(f)) : resource(like + "/" + f));
            }
            Path tokenizer = out.resolve("tokenizer");
            if (folder && Files.isRegularFile(from.resolve("tokenizer/vocab.json"))) {
                Files.createDirectories(tokenizer);
                for (String f : new String[] {"vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"}) {
                    if (Files.isRegularFile(from.resolve("tokenizer").resolve(f))) {
                        Files.copy(from.resolve("tokenizer").resolve(f), tokenizer.resolve(f),
                                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
                    }
                }
            } else {
                Tokenizers.writeSynthetic(tokenizer);
            }
        } catch (IOException e) {
            throw new MarbleException(out + ": cannot write: " + e.getMessage());
        }
        component(out, "text_encoder", "model.safetensors", ModelSchema::textEncoder, dtype, progress);
        component(out, "unet", "diffusion_pytorch_model.safetensors", ModelSchema::unet, dtype, progress);
        component(out, "vae", "diffusion_pytorch_model.safetensors", ModelSchema::vae, dtype, progress);
    }

    /**
     * Writes a single-file LDM checkpoint at {@code file} (the UNet, VAE and text encoder under LDM
     * names, the text encoder in transformers' layout), with the tokenizer in a {@code tokenizer/}
     * folder beside it, where {@code marble} looks for it.
     */
    public static void writeSingleFile(String like, DType dtype, Path file, java.util.function.Consumer<String> progress) {
        if (!knows(like)) {
            throw new MarbleException("synth: unknown model family '" + like + "'; use sd15 or sd21");
        }
        try (Arena arena = Arena.ofShared()) {
            JsonNode unet = JSON.readTree(resource(like + "/unet/config.json"));
            JsonNode vae = JSON.readTree(resource(like + "/vae/config.json"));
            JsonNode text = JSON.readTree(resource(like + "/text_encoder/config.json"));
            Path dir = file.toAbsolutePath().getParent();
            Files.createDirectories(dir);
            Tokenizers.writeSynthetic(dir.resolve("tokenizer"));
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            int layers = unet.path("layers_per_block").asInt(2);
            JsonNode upTypes = unet.path("up_block_types");
            progress.accept("unet");
            ModelSchema.unet(unet).forEach((k, shape) -> tensors.put(
                    LdmNames.unet(k, layers, b -> upTypes.get(b).asText().startsWith("CrossAttn")),
                    random(arena, k, shape, dtype)));
            progress.accept("vae");
            int levels = vae.path("block_out_channels").size();
            ModelSchema.vae(vae).forEach((k, shape) -> {
                long[] s = LdmNames.vaeIsConv1x1(k) ? new long[] {shape[0], shape[1], 1, 1} : shape;
                tensors.put(LdmNames.vae(k, levels), random(arena, k, s, dtype));
            });
            progress.accept("text_encoder");
            ModelSchema.textEncoder(text).forEach((k, shape) -> tensors.put(LdmNames.textEncoder(k),
                    random(arena, k, shape, dtype)));
            SafetensorsWriter.write(file, tensors, Map.of("format", "pt"));
        } catch (IOException e) {
            throw new MarbleException(file + ": cannot write: " + e.getMessage());
        }
    }

    private static void component(Path out, String name, String file, Function<JsonNode, Map<String, long[]>> schema,
            DType dtype, java.util.function.Consumer<String> progress) {
        progress.accept(name);
        JsonNode config;
        try {
            config = JSON.readTree(out.resolve(name).resolve("config.json").toFile());
        } catch (IOException e) {
            throw new MarbleException(out + ": cannot read " + name + " config: " + e.getMessage());
        }
        try (Arena arena = Arena.ofShared()) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (Map.Entry<String, long[]> e : schema.apply(config).entrySet()) {
                tensors.put(e.getKey(), random(arena, e.getKey(), e.getValue(), dtype));
            }
            SafetensorsWriter.write(out.resolve(name).resolve(file), tensors, Map.of("format", "pt"));
        }
    }

    /** One tensor: identity for norm scales, zero for norm shifts, uniform ±√(3 / fan-in) otherwise. */
    static Tensor random(Arena arena, String name, long[] shape, DType dtype) {
        Tensor t = Tensor.allocate(arena, dtype, shape);
        boolean norm = name.contains("norm");
        long fanIn = 1;
        for (int i = 1; i < shape.length; i++) {
            fanIn *= shape[i];
        }
        if (shape.length == 1) {
            fanIn = shape[0];
        }
        float bound;
        float offset = 0f;
        if (norm && name.endsWith(".weight")) {
            bound = 0f;
            offset = 1f;
        } else if (norm) {
            bound = 0f;
        } else if (name.contains("embedding")) {
            bound = 0.02f * (float) Math.sqrt(3);
        } else {
            bound = (float) Math.sqrt(3.0 / fanIn);
        }
        fill(t.data(), t.numel(), dtype, name.hashCode(), bound, offset);
        return t;
    }

    private static void fill(MemorySegment seg, long n, DType dtype, long seed, float bound, float offset) {
        int chunks = (int) Math.min(Integer.MAX_VALUE, (n + 65535) / 65536);
        Parallel.forChunks(chunks, (c, from, to) -> {
            for (int chunk = from; chunk < to; chunk++) {
                long state = seed * 0x9E3779B97F4A7C15L + chunk * 0xD1B54A32D192ED03L;
                long end = Math.min(n, (chunk + 1L) * 65536);
                for (long i = chunk * 65536L; i < end; i++) {
                    state += 0x9E3779B97F4A7C15L;
                    float u = (mix(state) >>> 40) * 0x1p-24f * 2f - 1f; // uniform in [-1, 1)
                    float v = offset + bound * u;
                    switch (dtype) {
                        case F32 -> seg.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
                        case F16 -> seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Float.floatToFloat16(v));
                        default -> seg.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, Numerics.floatToBf16(v));
                    }
                }
            }
        });
    }

    /** SplitMix64's output function. */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    static byte[] resource(String path) throws IOException {
        try (InputStream in = Synthesizer.class.getResourceAsStream("/dev/marble/runtime/synth/" + path)) {
            if (in == null) {
                throw new IOException("missing resource " + path);
            }
            return in.readAllBytes();
        }
    }
}
