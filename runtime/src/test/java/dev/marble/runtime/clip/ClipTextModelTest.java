package dev.marble.runtime.clip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.runtime.nn.GoldenCase;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class ClipTextModelTest {
    private static final Arena ARENA = Arena.ofShared();
    private static ClipTextConfig config;
    private static ClipTextModel fp32;

    @BeforeAll
    static void loadFp32() {
        Path te = GoldenCase.root().resolve("models/sd15-tiny/text_encoder");
        config = ClipTextConfig.read(te.resolve("config.json"));
        fp32 = load(config, te.resolve("model.safetensors"));
    }

    @AfterAll
    static void free() {
        ARENA.close();
    }

    /** Loads, then closes the file: the model must not depend on the mapping. Every key must be used. */
    private static ClipTextModel load(ClipTextConfig c, Path file) {
        try (SafetensorsSource src = SafetensorsSource.open(file)) {
            WeightScope root = WeightScope.root(src);
            ClipTextModel m = ClipTextModel.load(c, root.at("text_model"), ARENA);
            assertEquals(java.util.Set.of(), root.unusedKeys(), "unused text encoder weights");
            return m;
        }
    }

    @Test
    void configIsReadFromJson() {
        assertEquals(32, config.hiddenSize());
        assertEquals(4, config.numAttentionHeads());
        assertEquals("quick_gelu", config.hiddenAct());
        assertEquals(2, config.eosTokenId());
        assertEquals(1e-5f, config.layerNormEps());
    }

    @ParameterizedTest
    @ValueSource(strings = {"text_encoder_sd15-tiny", "text_encoder_sd15-tiny_fp16w"})
    void matchesGolden(String id) {
        try (GoldenCase g = GoldenCase.open(id); Workspace ws = new Workspace()) {
            ClipTextModel model = g.fp16Weights()
                    ? load(config, g.weightsFile("text_encoder", "model"))
                    : fp32;
            ClipTextModel.Output o = model.encode(ws, g.tensor("input_ids"));
            g.check("last_hidden_state", o.lastHiddenState());
            g.check("penultimate_hidden_state", o.penultimateHiddenState());
            g.check("pooler_output", o.pooledOutput());
            g.check("penultimate_final_layer_norm", model.applyFinalLayerNorm(ws, o.penultimateHiddenState()));
        }
    }

    @Test
    void intArrayIdsGiveTheSameResult() {
        try (GoldenCase g = GoldenCase.open("text_encoder_sd15-tiny"); Workspace ws = new Workspace()) {
            Tensor idsTensor = g.tensor("input_ids");
            int[][] ids = new int[idsTensor.size(0)][idsTensor.size(1)];
            for (int b = 0; b < ids.length; b++) {
                for (int i = 0; i < ids[b].length; i++) {
                    ids[b][i] = (int) idsTensor.getFloat(b, i);
                }
            }
            assertArrayEquals(fp32.encode(ws, idsTensor).lastHiddenState().toFloatArray(),
                    fp32.encode(ws, ids).lastHiddenState().toFloatArray());
        }
    }

    /** With a non-legacy eos_token_id, the pooled row is the first occurrence of that id, not argmax(ids). */
    @Test
    void pooledOutputUsesFirstEosWhenNotLegacy() {
        ClipTextConfig c = new ClipTextConfig(config.vocabSize(), config.hiddenSize(), config.intermediateSize(),
                config.numHiddenLayers(), config.numAttentionHeads(), config.maxPositionEmbeddings(),
                config.hiddenAct(), config.layerNormEps(), config.bosTokenId(), 320, config.padTokenId());
        ClipTextModel m = load(c, GoldenCase.root().resolve("models/sd15-tiny/text_encoder/model.safetensors"));
        int[][] ids = {{49406, 500, 320, 49407, 49407, 320}};
        try (Workspace ws = new Workspace()) {
            ClipTextModel.Output o = m.encode(ws, ids);
            float[] pooled = o.pooledOutput().toFloatArray();
            Tensor last = o.lastHiddenState();
            for (int e = 0; e < c.hiddenSize(); e++) {
                assertEquals(last.getFloat(0, 2, e), pooled[e]);
            }
            ClipTextModel.Output legacy = fp32.encode(ws, ids);
            for (int e = 0; e < c.hiddenSize(); e++) {
                assertEquals(legacy.lastHiddenState().getFloat(0, 3, e), legacy.pooledOutput().getFloat(0, e));
            }
        }
    }

    @Test
    void badIdsFailWithOneLineMessages() {
        try (Workspace ws = new Workspace()) {
            MarbleException e = assertThrows(MarbleException.class, () -> fp32.encode(ws, new int[][] {{49406, 49408}}));
            assertTrue(e.getMessage().contains("49408"), e.getMessage());
            e = assertThrows(MarbleException.class, () -> fp32.encode(ws, new int[][] {new int[78]}));
            assertTrue(e.getMessage().contains("78"), e.getMessage());
            assertThrows(MarbleException.class, () -> fp32.encode(ws, new int[][] {{1, 2}, {3}}));
            assertThrows(MarbleException.class, () -> fp32.encode(ws, new int[0][]));
        }
    }
}
