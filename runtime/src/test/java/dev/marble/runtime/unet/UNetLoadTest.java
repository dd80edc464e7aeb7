package dev.marble.runtime.unet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.SafetensorsFile;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.TensorSource;
import dev.marble.weights.WeightScope;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Config/weight agreement, the SD-2 code paths on the tiny weights, and input validation. */
class UNetLoadTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static ObjectNode tinyConfigJson() throws IOException {
        return (ObjectNode) JSON.readTree(UNetGoldenTest.unetDir().resolve("config.json").toFile());
    }

    /** The golden weights with the transformers' 1×1-conv projections reshaped to Linear weights. */
    private static TensorSource asLinearProjection(TensorSource src) {
        return new TensorSource() {
            @Override
            public boolean contains(String key) {
                return src.contains(key);
            }

            @Override
            public Tensor get(String key) {
                Tensor t = src.get(key);
                boolean proj = key.endsWith("proj_in.weight") || key.endsWith("proj_out.weight");
                return proj ? t.reshape(t.dim(0), t.dim(1)) : t;
            }

            @Override
            public Set<String> keys() {
                return src.keys();
            }

            @Override
            public String describe() {
                return src.describe() + " (linear projections)";
            }

            @Override
            public void close() {
                src.close();
            }
        };
    }

    /**
     * SD-2-style config on the tiny weights: use_linear_projection with [B, HW, C] Linear proj_in/proj_out,
     * and every per-block value given as a list. Mathematically the same network, so it must still meet
     * the golden output.
     */
    @Test
    void sd2StyleConfigMatchesGolden() throws IOException {
        ObjectNode cfg = tinyConfigJson();
        cfg.put("use_linear_projection", true);
        cfg.set("attention_head_dim", JSON.valueToTree(new int[] {8, 8, 8, 8}));
        cfg.set("cross_attention_dim", JSON.valueToTree(new int[] {32, 32, 32, 32}));
        cfg.set("transformer_layers_per_block", JSON.valueToTree(new int[] {1, 1, 1, 1}));
        cfg.set("layers_per_block", JSON.valueToTree(new int[] {2, 2, 2, 2}));
        UNetConfig config = UNetConfig.parse(cfg, "sd2-style");
        assertTrue(config.useLinearProjection());

        JsonNode c = Golden.caseById("unet_sd15-tiny_b1_t999");
        try (Arena arena = Arena.ofShared();
                TensorSource src = asLinearProjection(SafetensorsSource.open(
                        UNetGoldenTest.unetDir().resolve("diffusion_pytorch_model.safetensors")));
                SafetensorsFile f = SafetensorsFile.open(Golden.dir().resolve(c.get("file").asText()));
                Workspace ws = new Workspace()) {
            WeightScope w = WeightScope.root(src);
            UNet2DConditionModel model = UNet2DConditionModel.load(config, w, arena);
            assertEquals(Set.of(), w.unusedKeys());
            float[] out = model.forward(ws, f.tensor("sample"), f.tensor("timestep").toFloatArray(),
                    f.tensor("encoder_hidden_states")).toFloatArray();
            float[] ref = f.tensor("out").toFloatArray();
            double err = Golden.maxAbsDiff(out, ref);
            double atol = c.get("tolerance").get("out").get("rel").asDouble() * Golden.maxAbs(ref);
            assertTrue(err <= atol, "max|out-ref| = " + err + " > atol " + atol);
        }
    }

    @Test
    void weightShapeDisagreeingWithConfigNamesTheKey() throws IOException {
        ObjectNode cfg = tinyConfigJson();
        cfg.put("cross_attention_dim", 48);
        UNetConfig config = UNetConfig.parse(cfg, "wrong cross_attention_dim");
        try (Arena arena = Arena.ofShared();
                SafetensorsSource src = SafetensorsSource.open(
                        UNetGoldenTest.unetDir().resolve("diffusion_pytorch_model.safetensors"))) {
            MarbleException e = assertThrows(MarbleException.class,
                    () -> UNet2DConditionModel.load(config, WeightScope.root(src), arena));
            assertTrue(e.getMessage().contains("'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight'")
                    && e.getMessage().contains("[32, 32]") && e.getMessage().contains("[32, 48]"), e.getMessage());
        }
    }

    @Test
    void linearProjectionConfigOnConvWeightsIsRefused() throws IOException {
        ObjectNode cfg = tinyConfigJson();
        cfg.put("use_linear_projection", true);
        UNetConfig config = UNetConfig.parse(cfg, "linear on conv weights");
        try (Arena arena = Arena.ofShared();
                SafetensorsSource src = SafetensorsSource.open(
                        UNetGoldenTest.unetDir().resolve("diffusion_pytorch_model.safetensors"))) {
            MarbleException e = assertThrows(MarbleException.class,
                    () -> UNet2DConditionModel.load(config, WeightScope.root(src), arena));
            assertTrue(e.getMessage().contains("down_blocks.0.attentions.0.proj_in.weight"), e.getMessage());
        }
    }

    /** mid_block_type null (diffusers allows it): the up path starts from the last down output. */
    @Test
    void withoutMidBlock() throws IOException {
        ObjectNode cfg = tinyConfigJson();
        cfg.putNull("mid_block_type");
        UNetConfig config = UNetConfig.parse(cfg, "no mid block");
        JsonNode c = Golden.caseById("unet_sd15-tiny_b2_cfg_t761");
        try (Arena arena = Arena.ofShared();
                SafetensorsSource src = SafetensorsSource.open(
                        UNetGoldenTest.unetDir().resolve("diffusion_pytorch_model.safetensors"));
                SafetensorsFile f = SafetensorsFile.open(Golden.dir().resolve(c.get("file").asText()));
                Workspace ws = new Workspace()) {
            WeightScope w = WeightScope.root(src);
            UNet2DConditionModel model = UNet2DConditionModel.load(config, w, arena);
            assertTrue(!w.unusedKeys().isEmpty() && w.unusedKeys().stream().allMatch(k -> k.startsWith("mid_block.")),
                    "unused keys: " + w.unusedKeys());
            float[] first = runTwiceWithoutLeaks(model, ws, f);
            assertEquals(2 * 4 * 16 * 16, first.length);
            for (float v : first) {
                assertTrue(Float.isFinite(v));
            }
        }
    }

    /**
     * Every buffer a forward pass takes comes back: a second pass allocates nothing new and, since no
     * buffer is handed out twice, reproduces the first bit for bit.
     */
    @Test
    void workspaceIsRecycledWithoutLeaks() {
        UNet2DConditionModel model = UNetGoldenTest.model("fp32");
        JsonNode c = Golden.caseById("unet_sd15-tiny_b2_pertimestep");
        try (SafetensorsFile f = SafetensorsFile.open(Golden.dir().resolve(c.get("file").asText()));
                Workspace ws = new Workspace()) {
            runTwiceWithoutLeaks(model, ws, f);
        }
    }

    private static float[] runTwiceWithoutLeaks(UNet2DConditionModel model, Workspace ws, SafetensorsFile f) {
        float[][] outs = new float[2][];
        long[] allocated = new long[2];
        for (int run = 0; run < 2; run++) {
            Tensor out = model.forward(ws, f.tensor("sample"), f.tensor("timestep").toFloatArray(),
                    f.tensor("encoder_hidden_states"));
            outs[run] = out.toFloatArray();
            ws.give(out);
            allocated[run] = ws.allocatedBytes();
        }
        assertEquals(allocated[0], allocated[1], "the second pass allocated new workspace memory");
        assertArrayEquals(outs[0], outs[1]);
        return outs[0];
    }

    @Test
    void latentSidesThatAreNotMultiplesOfEightRunAtTheirOwnSize() {
        UNet2DConditionModel model = UNetGoldenTest.model("fp32");
        try (Arena arena = Arena.ofShared(); Workspace ws = new Workspace()) {
            Tensor ctx = Tensor.allocate(arena, DType.F32, 1, 77, 32);
            float[] v = new float[4 * 13 * 10];
            for (int i = 0; i < v.length; i++) {
                v[i] = (float) Math.sin(i);
            }
            Tensor odd = Tensor.fromFloats(arena, v, 1, 4, 13, 10); // 13 → 7 → 4 → 2 on the way down
            Tensor out = model.forward(ws, odd, new float[] {500}, ctx);
            assertArrayEquals(new long[] {1, 4, 13, 10}, out.shape());
            for (float x : out.toFloatArray()) {
                assertTrue(Float.isFinite(x));
            }
        }
    }

    @Test
    void badInputsAreRefused() {
        UNet2DConditionModel model = UNetGoldenTest.model("fp32");
        try (Arena arena = Arena.ofShared(); Workspace ws = new Workspace()) {
            Tensor ctx = Tensor.allocate(arena, DType.F32, 1, 77, 32);
            Tensor sample = Tensor.allocate(arena, DType.F32, 1, 4, 16, 16);
            assertMessage(() -> model.forward(ws, sample, new float[] {1, 2, 3}, ctx), "1 or 1 timesteps");
            Tensor wide = Tensor.allocate(arena, DType.F32, 1, 77, 40);
            assertMessage(() -> model.forward(ws, sample, new float[] {1}, wide), "width 40", "[32]");
            Tensor threeCh = Tensor.allocate(arena, DType.F32, 1, 3, 16, 16);
            assertMessage(() -> model.forward(ws, threeCh, new float[] {1}, ctx), "[B, 4, h, w]");
            Tensor batch2 = Tensor.allocate(arena, DType.F32, 2, 77, 32);
            assertMessage(() -> model.forward(ws, sample, new float[] {1}, batch2), "[1, L, D]");
        }
    }

    private static void assertMessage(Runnable r, String... parts) {
        MarbleException e = assertThrows(MarbleException.class, r::run);
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "'" + p + "' not in: " + e.getMessage());
        }
    }
}
