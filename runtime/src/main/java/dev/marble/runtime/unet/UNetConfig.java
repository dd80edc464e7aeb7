package dev.marble.runtime.unet;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.kernels.Activation;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The hyper-parameters of a diffusers {@code UNet2DConditionModel}, read from {@code unet/config.json}
 * and normalized the way diffusers 0.27 does in {@code UNet2DConditionModel.__init__}: every value
 * that may be an int or a per-block list becomes a per-block list here.
 *
 * @param attentionHeads number of attention heads per down block. diffusers' naming quirk: configs
 *        store the head COUNT in {@code attention_head_dim} ({@code num_attention_heads = num_attention_heads
 *        or attention_head_dim}); the head size is then channels / heads (SD 1.x: 8 heads of 40..160,
 *        SD 2.x: [5, 10, 20, 20] heads of 64).
 * @param transformerLayersPerBlock per down block, per resnet layer: BasicTransformerBlocks in that layer's
 *        Transformer2DModel
 * @param upTransformerLayersPerBlock per up block, per resnet layer (reversed down values, or
 *        {@code reverse_transformer_layers_per_block})
 * @param midTransformerLayers BasicTransformerBlocks in the mid block's Transformer2DModel
 * @param midBlockType {@code "UNetMidBlock2DCrossAttn"} or null (no mid block)
 * @param timeEmbeddingActFn activation applied to the time embedding after the MLP, or null
 * @param timestepPostAct activation at the end of the time MLP, or null
 * @param upcastAttention read but without numerical effect: attention is always computed in F32
 */
public record UNetConfig(
        int inChannels,
        int outChannels,
        List<Integer> blockOutChannels,
        List<String> downBlockTypes,
        List<String> upBlockTypes,
        String midBlockType,
        List<Integer> layersPerBlock,
        List<Integer> attentionHeads,
        List<Integer> crossAttentionDim,
        List<List<Integer>> transformerLayersPerBlock,
        List<List<Integer>> upTransformerLayersPerBlock,
        int midTransformerLayers,
        boolean useLinearProjection,
        int normNumGroups,
        float normEps,
        String actFn,
        boolean flipSinToCos,
        float freqShift,
        int timeEmbeddingDim,
        String timeEmbeddingActFn,
        String timestepPostAct,
        int convInKernel,
        int convOutKernel,
        int downsamplePadding,
        float midBlockScaleFactor,
        boolean centerInputSample,
        boolean upcastAttention) {

    static final String CROSS_ATTN_DOWN = "CrossAttnDownBlock2D";
    static final String DOWN = "DownBlock2D";
    static final String CROSS_ATTN_UP = "CrossAttnUpBlock2D";
    static final String UP = "UpBlock2D";
    static final String MID_CROSS_ATTN = "UNetMidBlock2DCrossAttn";

    private static final ObjectMapper JSON = new ObjectMapper();

    public UNetConfig {
        blockOutChannels = List.copyOf(blockOutChannels);
        downBlockTypes = List.copyOf(downBlockTypes);
        upBlockTypes = List.copyOf(upBlockTypes);
        layersPerBlock = List.copyOf(layersPerBlock);
        attentionHeads = List.copyOf(attentionHeads);
        crossAttentionDim = List.copyOf(crossAttentionDim);
        transformerLayersPerBlock = transformerLayersPerBlock.stream().map(List::copyOf).toList();
        upTransformerLayersPerBlock = upTransformerLayersPerBlock.stream().map(List::copyOf).toList();
    }

    /** Number of down (and up) blocks. */
    public int numBlocks() {
        return blockOutChannels.size();
    }

    /**
     * Size of one attention head in block {@code i} (down-block order): channels // heads, as diffusers'
     * blocks pass {@code out_channels // num_attention_heads} to Transformer2DModel.
     */
    public int headSize(int i) {
        return blockOutChannels.get(i) / attentionHeads.get(i);
    }

    /** Reads and validates {@code config.json}. */
    public static UNetConfig read(Path configJson) {
        JsonNode root;
        try {
            root = JSON.readTree(configJson.toFile());
        } catch (IOException e) {
            throw new MarbleException(configJson + ": cannot read UNet config: " + e.getMessage());
        }
        return parse(root, configJson.toString());
    }

    /** Parses a config given as JSON text; {@code where} names it in error messages. */
    public static UNetConfig parse(String json, String where) {
        try {
            return parse(JSON.readTree(json), where);
        } catch (IOException e) {
            throw new MarbleException(where + ": invalid JSON: " + e.getMessage());
        }
    }

    /** Parses an already-read config object. */
    public static UNetConfig parse(JsonNode root, String where) {
        if (root == null || !root.isObject()) {
            throw new MarbleException(where + ": UNet config is not a JSON object");
        }
        Reader r = new Reader(root, where);
        r.rejectUnsupported();

        List<Integer> blockOut = checkPositive(r, "block_out_channels", r.intList("block_out_channels"));
        int n = blockOut.size();
        if (n == 0) {
            throw new MarbleException(where + ": block_out_channels is empty");
        }
        List<String> down = r.stringList("down_block_types");
        List<String> up = r.stringList("up_block_types");
        if (down.size() != n || up.size() != n) {
            throw new MarbleException(where + ": down_block_types (" + down.size() + "), up_block_types ("
                    + up.size() + ") and block_out_channels (" + n + ") must have the same length");
        }
        for (String t : down) {
            r.require(t.equals(CROSS_ATTN_DOWN) || t.equals(DOWN), "down_block_types", "unsupported block type '"
                    + t + "' (supported: " + CROSS_ATTN_DOWN + ", " + DOWN + ")");
        }
        for (String t : up) {
            r.require(t.equals(CROSS_ATTN_UP) || t.equals(UP), "up_block_types", "unsupported block type '"
                    + t + "' (supported: " + CROSS_ATTN_UP + ", " + UP + ")");
        }
        String mid = r.optString("mid_block_type", MID_CROSS_ATTN);
        r.require(mid == null || mid.equals(MID_CROSS_ATTN), "mid_block_type",
                "unsupported mid block '" + mid + "' (supported: " + MID_CROSS_ATTN + " or null)");

        List<Integer> layers = checkPositive(r, "layers_per_block", r.perBlockInts("layers_per_block", n));
        // diffusers: num_attention_heads = num_attention_heads or attention_head_dim (the head count).
        JsonNode heads = r.node("num_attention_heads");
        String headsKey = heads != null && !heads.isNull() ? "num_attention_heads" : "attention_head_dim";
        List<Integer> attnHeads = checkPositive(r, headsKey, r.perBlockInts(headsKey, n));
        List<Integer> crossDim = checkPositive(r, "cross_attention_dim", r.perBlockInts("cross_attention_dim", n));

        // transformer_layers_per_block: an int, a per-block list, or a per-block list of per-layer lists.
        JsonNode tl = r.node("transformer_layers_per_block");
        List<JsonNode> tlBlocks = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (tl == null || tl.isNull()) {
                tlBlocks.add(JSON.getNodeFactory().numberNode(1));
            } else if (tl.isArray()) {
                r.require(tl.size() == n, "transformer_layers_per_block", "has " + tl.size()
                        + " entries for " + n + " blocks");
                tlBlocks.add(tl.get(i));
            } else {
                tlBlocks.add(tl);
            }
        }
        List<List<Integer>> downTl = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            downTl.add(r.perLayer("transformer_layers_per_block", tlBlocks.get(i), layers.get(i)));
        }
        JsonNode reverseTl = r.node("reverse_transformer_layers_per_block");
        List<List<Integer>> upTl = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int upLayers = layers.get(n - 1 - i) + 1;
            JsonNode entry;
            if (reverseTl != null && !reverseTl.isNull()) {
                r.require(reverseTl.isArray() && reverseTl.size() == n, "reverse_transformer_layers_per_block",
                        "must be a list of " + n + " entries");
                entry = reverseTl.get(i);
            } else {
                entry = tlBlocks.get(n - 1 - i);
                r.require(!entry.isArray(), "transformer_layers_per_block", "per-layer lists need "
                        + "reverse_transformer_layers_per_block (an asymmetrical UNet, as diffusers requires)");
            }
            upTl.add(r.perLayer("reverse_transformer_layers_per_block", entry, upLayers));
        }
        JsonNode midEntry = tlBlocks.get(n - 1);
        int midTl = midEntry.isArray() ? r.positive("transformer_layers_per_block", midEntry.get(0))
                : r.positive("transformer_layers_per_block", midEntry);

        for (int i = 0; i < n; i++) {
            r.require(attnHeads.get(i) <= blockOut.get(i), headsKey, attnHeads.get(i) + " heads for "
                    + blockOut.get(i) + " channels in block " + i);
        }
        JsonNode td = r.node("time_embedding_dim");
        int timeDim = td == null || td.isNull()
                ? blockOut.get(0) * 4 // diffusers _set_time_proj: block_out_channels[0] * 4
                : r.positive("time_embedding_dim", td);

        int convIn = r.optInt("conv_in_kernel", 3);
        int convOut = r.optInt("conv_out_kernel", 3);
        r.require(convIn > 0 && convIn % 2 == 1, "conv_in_kernel", "must be a positive odd number");
        r.require(convOut > 0 && convOut % 2 == 1, "conv_out_kernel", "must be a positive odd number");
        int downPad = r.optInt("downsample_padding", 1);
        r.require(downPad >= 0, "downsample_padding", "must not be negative");

        return new UNetConfig(
                r.positive("in_channels", r.node("in_channels")),
                r.positive("out_channels", r.node("out_channels")),
                blockOut,
                down,
                up,
                mid,
                layers,
                attnHeads,
                crossDim,
                downTl,
                upTl,
                midTl,
                r.optBool("use_linear_projection", false),
                r.positive("norm_num_groups", r.node("norm_num_groups")),
                (float) r.optDouble("norm_eps", 1e-5),
                r.activation("act_fn", "silu"),
                r.optBool("flip_sin_to_cos", true),
                (float) r.optDouble("freq_shift", 0),
                timeDim,
                r.activation("time_embedding_act_fn", null),
                r.activation("timestep_post_act", null),
                convIn,
                convOut,
                downPad,
                (float) r.optDouble("mid_block_scale_factor", 1),
                r.optBool("center_input_sample", false),
                r.optBool("upcast_attention", false));
    }

    private static List<Integer> checkPositive(Reader r, String key, List<Integer> values) {
        for (int v : values) {
            r.require(v > 0, key, "values must be positive, got " + values);
        }
        return values;
    }

    /** Typed access to the JSON object with one-line errors naming the file and key. */
    private record Reader(JsonNode root, String where) {
        JsonNode node(String key) {
            return root.get(key);
        }

        void require(boolean ok, String key, String problem) {
            if (!ok) {
                throw new MarbleException(where + ": " + key + ": " + problem);
            }
        }

        /** Features of UNet2DConditionModel that the SD 1.x / 2.x UNet does not use: refused, not ignored. */
        void rejectUnsupported() {
            for (String key : List.of("class_embed_type", "addition_embed_type", "encoder_hid_dim_type",
                    "encoder_hid_dim", "time_cond_proj_dim", "num_class_embeds", "cross_attention_norm")) {
                JsonNode v = root.get(key);
                require(v == null || v.isNull(), key, "'" + v + "' is not supported (only null)");
            }
            requireDefault("attention_type", "default");
            requireDefault("resnet_time_scale_shift", "default");
            requireDefault("time_embedding_type", "positional");
            JsonNode only = root.get("only_cross_attention");
            if (only != null && !only.isNull()) {
                boolean any = only.isArray() ? anyTrue(only) : only.asBoolean();
                require(!any, "only_cross_attention", "true is not supported (attn1 must be self-attention)");
            }
            JsonNode midOnly = root.get("mid_block_only_cross_attention");
            require(midOnly == null || midOnly.isNull() || !midOnly.asBoolean(), "mid_block_only_cross_attention",
                    "true is not supported");
            JsonNode dual = root.get("dual_cross_attention");
            require(dual == null || dual.isNull() || !dual.asBoolean(), "dual_cross_attention",
                    "true is not supported");
        }

        private static boolean anyTrue(JsonNode arr) {
            for (JsonNode e : arr) {
                if (e.asBoolean()) {
                    return true;
                }
            }
            return false;
        }

        private void requireDefault(String key, String expected) {
            JsonNode v = root.get(key);
            require(v == null || v.isNull() || expected.equals(v.asText()), key,
                    "'" + (v == null ? null : v.asText()) + "' is not supported (only '" + expected + "')");
        }

        int positive(String key, JsonNode v) {
            require(v != null && v.canConvertToExactIntegral() && v.canConvertToInt(), key,
                    v == null ? "missing" : "expected an integer, got " + v);
            require(v.asInt() > 0, key, "must be positive, got " + v.asInt());
            return v.asInt();
        }

        /** An int (repeated for every block) or a list of exactly {@code n} ints. */
        List<Integer> perBlockInts(String key, int n) {
            JsonNode v = root.get(key);
            require(v != null && !v.isNull(), key, "missing");
            if (v.isArray()) {
                require(v.size() == n, key, "has " + v.size() + " entries for " + n + " blocks");
                List<Integer> out = new ArrayList<>();
                for (JsonNode e : v) {
                    out.add(integer(key, e));
                }
                return out;
            }
            return Collections.nCopies(n, integer(key, v));
        }

        /** A per-block entry: an int (same for every layer) or a list with one int per layer. */
        List<Integer> perLayer(String key, JsonNode entry, int layers) {
            if (entry.isArray()) {
                require(entry.size() == layers, key, "entry " + entry + " needs " + layers + " values");
                List<Integer> out = new ArrayList<>();
                for (JsonNode e : entry) {
                    out.add(positive(key, e));
                }
                return out;
            }
            return Collections.nCopies(layers, positive(key, entry));
        }

        private int integer(String key, JsonNode e) {
            require(e.canConvertToExactIntegral() && e.canConvertToInt(), key, "expected an integer, got " + e);
            return e.asInt();
        }

        List<Integer> intList(String key) {
            JsonNode v = root.get(key);
            require(v != null && v.isArray(), key, v == null ? "missing" : "expected a list");
            List<Integer> out = new ArrayList<>();
            for (JsonNode e : v) {
                out.add(integer(key, e));
            }
            return out;
        }

        List<String> stringList(String key) {
            JsonNode v = root.get(key);
            require(v != null && v.isArray(), key, v == null ? "missing" : "expected a list");
            List<String> out = new ArrayList<>();
            for (JsonNode e : v) {
                require(e.isTextual(), key, "expected strings, got " + e);
                out.add(e.asText());
            }
            return out;
        }

        String optString(String key, String fallback) {
            JsonNode v = root.get(key);
            if (v == null) {
                return fallback;
            }
            if (v.isNull()) {
                return null;
            }
            require(v.isTextual(), key, "expected a string, got " + v);
            return v.asText();
        }

        /** An activation name the kernels support (or null where {@code fallback} is null). */
        String activation(String key, String fallback) {
            String name = optString(key, fallback);
            if (name != null) {
                try {
                    Activation.Kind.fromConfig(name);
                } catch (MarbleException e) {
                    throw new MarbleException(where + ": " + key + ": " + e.getMessage());
                }
            }
            return name;
        }

        int optInt(String key, int fallback) {
            JsonNode v = root.get(key);
            return v == null || v.isNull() ? fallback : integer(key, v);
        }

        double optDouble(String key, double fallback) {
            JsonNode v = root.get(key);
            if (v == null || v.isNull()) {
                return fallback;
            }
            require(v.isNumber(), key, "expected a number, got " + v);
            return v.asDouble();
        }

        boolean optBool(String key, boolean fallback) {
            JsonNode v = root.get(key);
            if (v == null || v.isNull()) {
                return fallback;
            }
            require(v.isBoolean(), key, "expected true or false, got " + v);
            return v.asBoolean();
        }
    }
}
