package dev.marble.weights;

import static dev.marble.weights.TestFiles.assertFails;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DiffusersModelTest {
    @TempDir
    Path root;

    private Path model;

    private static void write(Path file, String text) throws IOException {
        Files.createDirectories(file.getParent());
        Files.writeString(file, text);
    }

    private static Tensor f32(Arena arena, float... v) {
        return Tensor.fromFloats(arena, v, v.length);
    }

    private static Tensor f16(Arena arena, float... v) {
        Tensor t = Tensor.allocate(arena, DType.F16, v.length);
        for (int i = 0; i < v.length; i++) {
            t.setFloat(v[i], i);
        }
        return t;
    }

    /**
     * A pipeline folder with every weight layout: unet with both variants, vae with only the fp16
     * variant, text_encoder sharded (full precision: transformers index name; fp16: diffusers' variant
     * index name), a tokenizer and a scheduler without weights, and a null safety checker.
     */
    @BeforeEach
    void buildFolder() throws IOException {
        model = root.resolve("tiny");
        write(model.resolve("model_index.json"), """
                {"_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.27.2",
                 "feature_extractor": [null, null], "requires_safety_checker": false,
                 "safety_checker": [null, null], "scheduler": ["diffusers", "PNDMScheduler"],
                 "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
                 "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}""");
        write(model.resolve("unet/config.json"), "{\"_class_name\": \"UNet2DConditionModel\", \"in_channels\": 4,"
                + " \"block_out_channels\": [32, 64], \"sample_size\": NaN}");
        write(model.resolve("vae/config.json"), "{\"_class_name\": \"AutoencoderKL\", \"scaling_factor\": 0.18215}");
        write(model.resolve("text_encoder/config.json"), "{\"hidden_size\": 32}");
        write(model.resolve("tokenizer/tokenizer_config.json"), "{\"model_max_length\": 77}");
        write(model.resolve("tokenizer/vocab.json"), "{}");
        write(model.resolve("scheduler/scheduler_config.json"), "{\"_class_name\": \"PNDMScheduler\", \"steps_offset\": 1}");
        try (Arena arena = Arena.ofConfined()) {
            SafetensorsWriter.write(model.resolve("unet/diffusion_pytorch_model.safetensors"),
                    Map.of("conv_in.weight", f32(arena, 1, 2, 3)));
            SafetensorsWriter.write(model.resolve("unet/diffusion_pytorch_model.fp16.safetensors"),
                    Map.of("conv_in.weight", f16(arena, 1, 2, 3)));
            SafetensorsWriter.write(model.resolve("vae/diffusion_pytorch_model.fp16.safetensors"),
                    Map.of("decoder.conv_in.bias", f16(arena, 0.5f)));
            SafetensorsWriter.write(model.resolve("text_encoder/model-00001-of-00002.safetensors"),
                    Map.of("a", f32(arena, 1)));
            SafetensorsWriter.write(model.resolve("text_encoder/model-00002-of-00002.safetensors"),
                    Map.of("b", f32(arena, 2)));
            SafetensorsWriter.write(model.resolve("text_encoder/model.fp16-00001-of-00001.safetensors"),
                    Map.of("a", f16(arena, 1), "b", f16(arena, 2)));
        }
        write(model.resolve("text_encoder/model.safetensors.index.json"), "{\"metadata\": {\"total_size\": 8},"
                + " \"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": \"model-00002-of-00002.safetensors\"}}");
        write(model.resolve("text_encoder/model.safetensors.index.fp16.json"),
                "{\"weight_map\": {\"a\": \"model.fp16-00001-of-00001.safetensors\","
                        + " \"b\": \"model.fp16-00001-of-00001.safetensors\"}}");
    }

    @Test
    void listsComponentsAndReadsConfigs() {
        DiffusersModel m = DiffusersModel.open(model);
        assertEquals("StableDiffusionPipeline", m.pipelineClass());
        assertEquals(Set.of("scheduler", "text_encoder", "tokenizer", "unet", "vae"), m.componentNames());
        assertTrue(m.has("unet"));
        assertFalse(m.has("safety_checker"));
        assertEquals(model.resolve("unet"), m.unet().dir());
        assertEquals("diffusers", m.unet().library());
        assertEquals("CLIPTextModel", m.textEncoder().className());
        JsonNode unet = m.unet().config();
        assertEquals(4, unet.get("in_channels").asInt());
        assertEquals(64, unet.get("block_out_channels").get(1).asInt());
        assertTrue(Double.isNaN(unet.get("sample_size").asDouble()), "Python's NaN is accepted");
        assertEquals(model.resolve("scheduler/scheduler_config.json"), m.scheduler().configFile());
        assertEquals(1, m.scheduler().config().get("steps_offset").asInt());
        assertEquals(77, m.tokenizer().config().get("model_max_length").asInt());
        assertEquals(model.resolve("tokenizer/vocab.json"), m.tokenizer().file("vocab.json"));
        // model_index.json itself may be given instead of its folder.
        assertEquals(m.componentNames(), DiffusersModel.open(model.resolve("model_index.json")).componentNames());
    }

    @Test
    void findsEveryWeightLayout() {
        DiffusersModel m = DiffusersModel.open(model);
        try (TensorSource s = m.unet().weights()) {
            assertEquals(DType.F32, s.get("conv_in.weight").dtype());
            assertTrue(s.describe().endsWith("diffusion_pytorch_model.safetensors"), s.describe());
        }
        try (TensorSource s = m.unet().weights(DiffusersModel.FP16)) {
            assertEquals(DType.F16, s.get("conv_in.weight").dtype());
            assertArrayEquals(new float[] {1, 2, 3}, s.get("conv_in.weight").toFloatArray());
        }
        try (TensorSource s = m.vae().weights()) { // falls back to the only variant there is
            assertEquals(0.5f, s.get("decoder.conv_in.bias").getFloat(0));
        }
        try (TensorSource s = m.textEncoder().weights()) {
            assertEquals(Set.of("a", "b"), s.keys());
            assertEquals(2f, s.get("b").getFloat(0));
            assertTrue(s.describe().endsWith("model.safetensors.index.json"), s.describe());
        }
        try (TensorSource s = m.textEncoder().weights("fp16")) {
            assertEquals(DType.F16, s.get("a").dtype());
        }
        assertTrue(m.unet().hasWeights(null));
        assertFalse(m.vae().hasWeights(null));
        assertTrue(m.vae().hasWeights("fp16"));
    }

    @Test
    void acceptsBothSpellingsOfTheVariantIndex() throws IOException {
        Path te = model.resolve("text_encoder");
        Files.move(te.resolve("model.safetensors.index.fp16.json"), te.resolve("model.fp16.safetensors.index.json"));
        try (TensorSource s = DiffusersModel.open(model).textEncoder().weights("fp16")) {
            assertEquals(DType.F16, s.get("b").dtype());
        }
    }

    @Test
    void explainsWhatIsMissing() throws IOException {
        Path missing = root.resolve("nothing");
        assertFails(() -> DiffusersModel.open(missing), missing.toString(), "no such model folder");
        Path file = Files.writeString(root.resolve("file.safetensors"), "x");
        assertFails(() -> DiffusersModel.open(file), file.toString(), "expected a diffusers model folder");
        assertFails(() -> DiffusersModel.open(model.resolve("unet")), "unet", "no model_index.json",
                "looks like a single component folder");

        DiffusersModel m = DiffusersModel.open(model);
        assertFails(() -> m.component("transformer"), "model_index.json", "no component 'transformer'",
                "scheduler, text_encoder, tokenizer, unet, vae");
        assertFails(() -> m.component("safety_checker"), "component 'safety_checker' is null");
        assertFails(() -> m.vae().weights(null), "no diffusion_pytorch_model.safetensors in "
                + model.resolve("vae"), "found diffusion_pytorch_model.fp16.safetensors");
        assertFails(() -> m.unet().weights("bf16"), "no bf16 variant (diffusion_pytorch_model.bf16.safetensors) in "
                + model.resolve("unet"), "found diffusion_pytorch_model.fp16.safetensors, diffusion_pytorch_model.safetensors");
        assertFails(() -> m.textEncoder().weights("bf16"), "no bf16 variant (model.bf16.safetensors)");
        assertFails(() -> m.scheduler().weights(), "no diffusion_pytorch_model.safetensors or .fp16 variant in "
                + model.resolve("scheduler"), "(no weight files at all)");
        assertFails(() -> m.tokenizer().file("merges.txt"), model.resolve("tokenizer/merges.txt").toString(),
                "no such file in component 'tokenizer'");

        // Only PyTorch pickles: say so.
        Files.delete(model.resolve("unet/diffusion_pytorch_model.safetensors"));
        Files.delete(model.resolve("unet/diffusion_pytorch_model.fp16.safetensors"));
        Files.writeString(model.resolve("unet/diffusion_pytorch_model.bin"), "pickle");
        assertFails(() -> m.unet().weights(), "no diffusion_pytorch_model.safetensors or .fp16 variant in "
                + model.resolve("unet"), "found diffusion_pytorch_model.bin", "convert them to safetensors");

        // A missing component folder, a missing or broken config.
        Files.writeString(model.resolve("vae/config.json"), "{\"scaling_factor\": 0.18215,}");
        assertFails(() -> m.vae().config(), model.resolve("vae/config.json").toString(), "not valid JSON", "line 1");
        Files.delete(model.resolve("text_encoder/config.json"));
        assertFails(() -> m.textEncoder().config(), model.resolve("text_encoder").toString(), "no config.json");
        for (Path p : List.of(model.resolve("tokenizer/tokenizer_config.json"), model.resolve("tokenizer/vocab.json"))) {
            Files.delete(p);
        }
        Files.delete(model.resolve("tokenizer"));
        assertFails(() -> m.tokenizer(), model.resolve("tokenizer").toString(), "component folder is missing");

        Files.writeString(model.resolve("model_index.json"), "{\"unet\": [\"diffusers\", 3]}");
        assertFails(() -> DiffusersModel.open(model), "model_index.json", "component 'unet' is [\"diffusers\",3]");
        Files.writeString(model.resolve("model_index.json"), "[\"unet\"]");
        assertFails(() -> DiffusersModel.open(model), "model_index.json", "expected a JSON object");
    }

    @Test
    void opensALoneComponentFolder() {
        DiffusersModel.Component vae = DiffusersModel.openComponent(model.resolve("vae"));
        assertEquals("vae", vae.name());
        assertNull(vae.library());
        assertEquals("AutoencoderKL", vae.className());
        try (TensorSource s = vae.weights()) {
            assertTrue(s.contains("decoder.conv_in.bias"));
        }
        assertFails(() -> vae.weights(null), "no diffusion_pytorch_model.safetensors or model.safetensors in");
        assertFails(() -> DiffusersModel.openComponent(root.resolve("none")), "no such folder");
    }

    /** The golden sd15-tiny folder: both variants of every model hold the same tensors. */
    @Test
    void opensTheGoldenPipeline() {
        Path dir = TestFiles.golden().resolve("models/sd15-tiny");
        DiffusersModel m = DiffusersModel.open(dir);
        assertEquals("StableDiffusionPipeline", m.pipelineClass());
        assertEquals(Set.of("scheduler", "text_encoder", "tokenizer", "unet", "vae"), m.componentNames());
        assertEquals("PNDMScheduler", m.scheduler().config().get("_class_name").asText());
        assertEquals("UNet2DConditionModel", m.unet().config().get("_class_name").asText());
        assertEquals("AutoencoderKL", m.vae().config().get("_class_name").asText());
        assertEquals("CLIPTextModel", m.textEncoder().className());
        assertTrue(Files.isRegularFile(m.tokenizer().file("vocab.json")));
        assertTrue(Files.isRegularFile(m.tokenizer().file("merges.txt")));
        Map<String, Integer> expectedCounts = Map.of("unet", 684, "vae", 244, "text_encoder", 52);
        for (String c : List.of("unet", "vae", "text_encoder")) {
            try (TensorSource full = m.component(c).weights(); TensorSource half = m.component(c).weights("fp16")) {
                assertEquals(expectedCounts.get(c), full.keys().size(), c);
                assertEquals(full.keys(), half.keys(), c);
                for (String k : full.keys()) {
                    Tensor f = full.get(k);
                    Tensor h = half.get(k);
                    assertEquals(DType.F32, f.dtype(), c + " " + k);
                    assertEquals(DType.F16, h.dtype(), c + " " + k);
                    assertArrayEquals(f.shape(), h.shape(), c + " " + k);
                }
            }
        }
    }
}
