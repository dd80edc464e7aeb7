package dev.marble.runtime.clip;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.tensors.MarbleException;
import java.io.IOException;
import java.nio.file.Path;

/**
 * transformers' CLIPTextConfig, as read from {@code text_encoder/config.json}. Absent fields take
 * transformers' defaults (CLIPTextConfig.__init__).
 *
 * @param eosTokenId 2 in configs written before transformers 4.31 (SD 1.x/2.x): the pooled output then
 *                   uses the legacy rule (position of the largest id), see {@link ClipTextModel}
 */
public record ClipTextConfig(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int maxPositionEmbeddings,
        String hiddenAct,
        float layerNormEps,
        int bosTokenId,
        int eosTokenId,
        int padTokenId) {

    public ClipTextConfig {
        if (vocabSize < 1 || hiddenSize < 1 || intermediateSize < 1 || numHiddenLayers < 1
                || numAttentionHeads < 1 || maxPositionEmbeddings < 1) {
            throw new MarbleException("text encoder config: sizes must be positive (vocab_size " + vocabSize
                    + ", hidden_size " + hiddenSize + ", intermediate_size " + intermediateSize
                    + ", num_hidden_layers " + numHiddenLayers + ", num_attention_heads " + numAttentionHeads
                    + ", max_position_embeddings " + maxPositionEmbeddings + ")");
        }
        if (hiddenSize % numAttentionHeads != 0) {
            throw new MarbleException("text encoder config: hidden_size " + hiddenSize
                    + " is not divisible by num_attention_heads " + numAttentionHeads);
        }
    }

    /** Reads a config.json (a CLIPTextConfig, or a full CLIPConfig with a {@code text_config} section). */
    public static ClipTextConfig read(Path configJson) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(configJson.toFile());
        } catch (IOException e) {
            throw new MarbleException(configJson + ": cannot read text encoder config: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new MarbleException(configJson + ": not a JSON object");
        }
        return fromJson(root.has("text_config") ? root.get("text_config") : root);
    }

    /** The config from a parsed JSON object. */
    public static ClipTextConfig fromJson(JsonNode n) {
        return new ClipTextConfig(
                intField(n, "vocab_size", 49408),
                intField(n, "hidden_size", 512),
                intField(n, "intermediate_size", 2048),
                intField(n, "num_hidden_layers", 12),
                intField(n, "num_attention_heads", 8),
                intField(n, "max_position_embeddings", 77),
                n.path("hidden_act").asText("quick_gelu"),
                (float) n.path("layer_norm_eps").asDouble(1e-5),
                intField(n, "bos_token_id", 49406),
                intField(n, "eos_token_id", 49407),
                intField(n, "pad_token_id", 1));
    }

    /** Size of one attention head. */
    public int headDim() {
        return hiddenSize / numAttentionHeads;
    }

    private static int intField(JsonNode n, String name, int dflt) {
        JsonNode v = n.get(name);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.canConvertToInt()) {
            throw new MarbleException("text encoder config: '" + name + "' is not an integer: " + v);
        }
        return v.asInt();
    }
}
