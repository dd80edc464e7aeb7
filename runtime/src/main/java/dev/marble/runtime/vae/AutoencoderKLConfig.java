package dev.marble.runtime.vae;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.tensors.MarbleException;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * diffusers AutoencoderKL's config, as read from {@code vae/config.json}. Absent fields take the
 * defaults of AutoencoderKL.__init__ (diffusers 0.27).
 *
 * @param blockOutChannels      channels per resolution level, encoder order (highest resolution first)
 * @param midBlockAddAttention  whether the mid blocks have their self-attention layer
 * @param useQuantConv          whether quant_conv (1×1, after the encoder) exists
 * @param usePostQuantConv      whether post_quant_conv (1×1, before the decoder) exists
 */
public record AutoencoderKLConfig(
        int inChannels,
        int outChannels,
        int latentChannels,
        List<Integer> blockOutChannels,
        int layersPerBlock,
        int normNumGroups,
        String actFn,
        float scalingFactor,
        int sampleSize,
        boolean midBlockAddAttention,
        boolean useQuantConv,
        boolean usePostQuantConv) {

    public AutoencoderKLConfig {
        blockOutChannels = List.copyOf(blockOutChannels);
        if (inChannels < 1 || outChannels < 1 || latentChannels < 1 || layersPerBlock < 1 || normNumGroups < 1
                || blockOutChannels.isEmpty()) {
            throw new MarbleException("vae config: in_channels, out_channels, latent_channels, layers_per_block,"
                    + " norm_num_groups and block_out_channels must be positive / non-empty");
        }
        for (int c : blockOutChannels) {
            if (c < 1 || c % normNumGroups != 0) {
                throw new MarbleException("vae config: block_out_channels " + blockOutChannels
                        + " must be positive multiples of norm_num_groups " + normNumGroups);
            }
        }
    }

    /** Reads a diffusers {@code vae/config.json}. */
    public static AutoencoderKLConfig read(Path configJson) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(configJson.toFile());
        } catch (IOException e) {
            throw new MarbleException(configJson + ": cannot read vae config: " + e.getMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new MarbleException(configJson + ": not a JSON object");
        }
        return fromJson(root);
    }

    /** The config from a parsed JSON object; only DownEncoderBlock2D / UpDecoderBlock2D block types exist here. */
    public static AutoencoderKLConfig fromJson(JsonNode n) {
        List<Integer> channels = intList(n, "block_out_channels", List.of(64));
        checkBlockTypes(n, "down_block_types", "DownEncoderBlock2D", channels.size());
        checkBlockTypes(n, "up_block_types", "UpDecoderBlock2D", channels.size());
        return new AutoencoderKLConfig(
                intField(n, "in_channels", 3),
                intField(n, "out_channels", 3),
                intField(n, "latent_channels", 4),
                channels,
                intField(n, "layers_per_block", 1),
                intField(n, "norm_num_groups", 32),
                n.path("act_fn").asText("silu"),
                (float) n.path("scaling_factor").asDouble(0.18215),
                sampleSize(n),
                n.path("mid_block_add_attention").asBoolean(true),
                n.path("use_quant_conv").asBoolean(true),
                n.path("use_post_quant_conv").asBoolean(true));
    }

    /** Image pixels per latent pixel along each axis: 2^(levels − 1), one halving per down block but the last. */
    public int downscaleFactor() {
        return 1 << (blockOutChannels.size() - 1);
    }

    private static void checkBlockTypes(JsonNode n, String field, String expected, int count) {
        JsonNode types = n.get(field);
        if (types == null || types.isNull()) {
            if (count != 1) {
                throw new MarbleException("vae config: " + field + " is missing but block_out_channels has "
                        + count + " entries");
            }
            return;
        }
        if (!types.isArray() || types.size() != count) {
            throw new MarbleException("vae config: " + field + " must list " + count + " blocks (one per"
                    + " block_out_channels entry), got " + types);
        }
        for (JsonNode t : types) {
            if (!t.asText().equals(expected)) {
                throw new MarbleException("vae config: unsupported " + field + " entry '" + t.asText()
                        + "' (only " + expected + ")");
            }
        }
    }

    /** sample_size is an int, or [height, width] in some configs: the height is kept. */
    private static int sampleSize(JsonNode n) {
        JsonNode v = n.get("sample_size");
        return v != null && v.isArray() && !v.isEmpty() && v.get(0).canConvertToInt()
                ? v.get(0).asInt()
                : intField(n, "sample_size", 32);
    }

    private static int intField(JsonNode n, String name, int dflt) {
        JsonNode v = n.get(name);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.canConvertToInt()) {
            throw new MarbleException("vae config: '" + name + "' is not an integer: " + v);
        }
        return v.asInt();
    }

    private static List<Integer> intList(JsonNode n, String name, List<Integer> dflt) {
        JsonNode v = n.get(name);
        if (v == null || v.isNull()) {
            return dflt;
        }
        if (!v.isArray()) {
            throw new MarbleException("vae config: '" + name + "' is not a list: " + v);
        }
        List<Integer> out = new ArrayList<>();
        for (JsonNode e : v) {
            if (!e.canConvertToInt()) {
                throw new MarbleException("vae config: '" + name + "' holds a non-integer: " + v);
            }
            out.add(e.asInt());
        }
        return out;
    }
}
