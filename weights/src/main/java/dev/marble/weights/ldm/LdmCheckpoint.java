package dev.marble.weights.ldm;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.dataformat.yaml.YAMLFactory;
import dev.marble.tensors.MarbleException;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.TensorSource;
import dev.marble.weights.quant.QuantizedSource;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A single-file LDM/CompVis checkpoint, the form community sites distribute: one safetensors file
 * with {@code model.diffusion_model.*} (UNet), {@code first_stage_model.*} (VAE) and the text
 * encoder under {@code cond_stage_model.transformer.text_model.*} (SD 1.x, transformers' CLIP) or
 * {@code cond_stage_model.model.*} (SD 2.x, OpenCLIP). Each component is exposed under diffusers'
 * key names, with a diffusers-style config derived from the tensor shapes; what shapes cannot
 * reveal comes from an original-config YAML when there is one, else from the SD 1.x / 2.x defaults
 * (as diffusers' single-file loader assumes them).
 *
 * <p>A file written by {@code marble quantize} from a single file is read through its checked
 * {@link QuantizedSource} view: its quantized weights reach each component's {@link TensorSource#quantized}
 * under their diffusers names.
 */
public final class LdmCheckpoint implements AutoCloseable {
    static final String UNET = "model.diffusion_model.";
    static final String VAE = "first_stage_model.";
    static final String CLIP_HF = "cond_stage_model.transformer.";
    static final String CLIP_OPEN = "cond_stage_model.model.";

    /** A single-file key split into its diffusers component and the name within it (e.g. for quantization rules). */
    public record Key(String component, String name) {
        /** {@code model.diffusion_model.x} → (unet, x) and likewise; a key under no component prefix → (other, key). */
        public static Key of(String key) {
            for (String[] p : COMPONENT_PREFIXES) {
                if (key.startsWith(p[0])) {
                    return new Key(p[1], key.substring(p[0].length()));
                }
            }
            return new Key("other", key);
        }
    }

    private static final String[][] COMPONENT_PREFIXES = {
        {UNET, "unet"}, {VAE, "vae"}, {CLIP_HF, "text_encoder"}, {CLIP_OPEN, "text_encoder"},
    };

    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private final Path file;
    private final TensorSource source;
    private final JsonNode yaml;
    private final Set<String> mapped = new HashSet<>();
    private final RemappedSource unet;
    private final RemappedSource vae;
    private final RemappedSource textEncoder;
    private final ObjectNode unetConfig;
    private final ObjectNode vaeConfig;
    private final ObjectNode textEncoderConfig;
    private final ObjectNode schedulerConfig;

    private LdmCheckpoint(Path file, TensorSource source, JsonNode yaml) {
        this.file = file;
        this.source = source;
        this.yaml = yaml;
        UNetKeys u = UNetKeys.map(source, file);
        this.unet = new RemappedSource(source, u.entries(), file + " (unet)");
        this.unetConfig = deriveUnetConfig(u);
        this.vae = new RemappedSource(source, vaeKeys(), file + " (vae)");
        this.vaeConfig = deriveVaeConfig();
        boolean openClip = hasPrefix(CLIP_OPEN);
        this.textEncoder = new RemappedSource(source, openClip ? openClipKeys() : hfClipKeys(), file + " (text encoder)");
        this.textEncoderConfig = deriveTextEncoderConfig(openClip);
        this.schedulerConfig = deriveSchedulerConfig(openClip);
        for (RemappedSource r : new RemappedSource[] {unet, vae, textEncoder}) {
            for (String k : r.keys()) {
                mapped.add(sourceKey(r, k));
            }
        }
    }

    /**
     * Opens {@code file}; {@code config} is the original-config YAML, or null to look for
     * {@code <name>.yaml} beside the file.
     */
    public static LdmCheckpoint open(Path file, Path config) {
        Path yamlPath = config;
        if (yamlPath == null) {
            String name = file.getFileName().toString();
            int dot = name.lastIndexOf('.');
            Path beside = file.resolveSibling((dot > 0 ? name.substring(0, dot) : name) + ".yaml");
            yamlPath = Files.isRegularFile(beside) ? beside : null;
        }
        JsonNode yaml = yamlPath == null ? NODES.objectNode() : readYaml(yamlPath);
        SafetensorsSource src = SafetensorsSource.open(file);
        try {
            return new LdmCheckpoint(file, QuantizedSource.isQuantized(src.metadata()) ? QuantizedSource.wrap(src, src.metadata())
                    : src, yaml);
        } catch (RuntimeException e) {
            src.close();
            throw e;
        }
    }

    private static JsonNode readYaml(Path path) {
        try {
            JsonNode n = new ObjectMapper(new YAMLFactory()).readTree(path.toFile());
            if (n == null || !n.isObject()) {
                throw new MarbleException(path + ": not a YAML mapping");
            }
            return n;
        } catch (IOException e) {
            String msg = e.getMessage() == null ? e.toString() : e.getMessage().lines().findFirst().orElse("");
            throw new MarbleException(path + ": cannot read config: " + msg);
        }
    }

    public Path file() {
        return file;
    }

    /** The UNet's weights under diffusers names. */
    public TensorSource unet() {
        return unet;
    }

    public TensorSource vae() {
        return vae;
    }

    public TensorSource textEncoder() {
        return textEncoder;
    }

    /** diffusers' unet/config.json equivalent. */
    public ObjectNode unetConfig() {
        return unetConfig.deepCopy();
    }

    public ObjectNode vaeConfig() {
        return vaeConfig.deepCopy();
    }

    /** transformers' text_encoder/config.json equivalent. */
    public ObjectNode textEncoderConfig() {
        return textEncoderConfig.deepCopy();
    }

    /** diffusers' scheduler/scheduler_config.json equivalent (PNDM, as the SD pipelines ship). */
    public ObjectNode schedulerConfig() {
        return schedulerConfig.deepCopy();
    }

    /** The file's name for a UNet tensor's diffusers name (for tests of {@link LdmNames}). */
    String unetSourceKey(String key) {
        return unet.entry(key).sourceKey();
    }

    String vaeSourceKey(String key) {
        return vae.entry(key).sourceKey();
    }

    String textEncoderSourceKey(String key) {
        return textEncoder.entry(key).sourceKey();
    }

    /** Keys of the file that no component uses (EMA copies, training buffers, ...). */
    public Set<String> unmappedKeys() {
        Set<String> s = new TreeSet<>(source.keys());
        s.removeAll(mapped);
        return s;
    }

    @Override
    public void close() {
        source.close();
    }

    // ---------------------------------------------------------------- UNet config

    private ObjectNode deriveUnetConfig(UNetKeys u) {
        JsonNode p = yaml.at("/model/params/unet_config/params");
        ObjectNode c = NODES.objectNode();
        c.put("_class_name", "UNet2DConditionModel");
        long[] convIn = source.shape(UNET + "input_blocks.0.0.weight"); // [C0, in, 3, 3]
        c.put("in_channels", convIn[1]);
        c.put("out_channels", source.shape(UNET + "out.2.weight")[0]);
        ArrayNode blocks = c.putArray("block_out_channels");
        ArrayNode down = c.putArray("down_block_types");
        ArrayNode up = c.putArray("up_block_types");
        for (int level = 0; level < u.levels(); level++) {
            blocks.add(u.blockOut()[level]);
            down.add(u.downAttention()[level] ? "CrossAttnDownBlock2D" : "DownBlock2D");
        }
        for (int b = 0; b < u.levels(); b++) {
            up.add(u.upAttention()[b] ? "CrossAttnUpBlock2D" : "UpBlock2D");
        }
        c.put("mid_block_type", u.midAttention() ? "UNetMidBlock2DCrossAttn" : "UNetMidBlock2D");
        c.put("layers_per_block", u.layersPerBlock());
        c.put("cross_attention_dim", u.contextDim());
        c.put("use_linear_projection", u.linearProjection());
        c.put("transformer_layers_per_block", u.transformerDepth());
        boolean sd2 = u.contextDim() == 1024;
        // diffusers names the head COUNT attention_head_dim (SD 1.x: 8 heads); SD 2.x gives a head
        // size (num_head_channels 64) from which the per-level head counts follow.
        int numHeads = p.path("num_heads").asInt(-1);
        int headChannels = p.path("num_head_channels").asInt(-1);
        if (numHeads <= 0 && headChannels <= 0) {
            if (sd2) {
                headChannels = 64;
            } else {
                numHeads = 8;
            }
        }
        if (numHeads > 0) {
            c.put("attention_head_dim", numHeads);
        } else {
            ArrayNode heads = c.putArray("attention_head_dim");
            for (long ch : u.blockOut()) {
                if (ch % headChannels != 0) {
                    throw new MarbleException(file + ": " + ch + " UNet channels do not split into heads of " + headChannels);
                }
                heads.add(ch / headChannels);
            }
        }
        c.put("norm_num_groups", p.path("norm_num_groups").asInt(32));
        c.put("norm_eps", 1e-5);
        c.put("flip_sin_to_cos", true);
        c.put("freq_shift", 0);
        c.put("act_fn", "silu");
        c.put("downsample_padding", 1);
        c.put("sample_size", yaml.at("/model/params/image_size").asInt(sd2 ? 96 : 64));
        return c;
    }

    // ---------------------------------------------------------------- VAE

    /** LDM's VAE names → diffusers'. Decoder levels are numbered in reverse in LDM. */
    private Map<String, RemappedSource.Entry> vaeKeys() {
        int levels = countIndices(VAE + "decoder.up.");
        Map<String, RemappedSource.Entry> m = new LinkedHashMap<>();
        Pattern level = Pattern.compile("(encoder|decoder)\\.(down|up)\\.(\\d+)\\.(block|downsample|upsample|attn)\\.(.*)");
        Pattern mid = Pattern.compile("(encoder|decoder)\\.mid\\.(block_1|block_2|attn_1)\\.(.*)");
        for (String key : source.keys()) {
            if (!key.startsWith(VAE)) {
                continue;
            }
            String k = key.substring(VAE.length());
            Matcher lm = level.matcher(k);
            Matcher mm = mid.matcher(k);
            String name;
            long[] shape = null;
            if (lm.matches()) {
                int i = Integer.parseInt(lm.group(3));
                int block = lm.group(2).equals("up") ? levels - 1 - i : i;
                String kind = lm.group(4);
                String rest = lm.group(5);
                String prefix = lm.group(1) + "." + lm.group(2) + "_blocks." + block + ".";
                name = switch (kind) {
                    case "block" -> prefix + "resnets." + resnet(rest);
                    case "downsample" -> prefix + "downsamplers.0." + rest;
                    case "upsample" -> prefix + "upsamplers.0." + rest;
                    default -> throw new MarbleException(file + ": tensor '" + key + "': attention inside VAE levels is not supported");
                };
            } else if (mm.matches()) {
                String part = mm.group(2);
                String rest = mm.group(3);
                String prefix = mm.group(1) + ".mid_block.";
                if (part.equals("attn_1")) {
                    String[] nr = rest.split("\\.", 2);
                    String proj = switch (nr[0]) {
                        case "norm" -> "group_norm";
                        case "q" -> "to_q";
                        case "k" -> "to_k";
                        case "v" -> "to_v";
                        case "proj_out" -> "to_out.0";
                        default -> throw new MarbleException(file + ": unexpected VAE attention tensor '" + key + "'");
                    };
                    name = prefix + "attentions.0." + proj + "." + nr[1];
                    long[] s = source.shape(key);
                    if (nr[1].equals("weight") && s.length == 4) {
                        shape = new long[] {s[0], s[1]}; // 1×1 conv [C, C, 1, 1] → linear [C, C]
                    }
                } else {
                    name = prefix + "resnets." + (part.equals("block_1") ? 0 : 1) + "." + resnetPart(rest);
                }
            } else if (k.startsWith("encoder.norm_out.") || k.startsWith("decoder.norm_out.")) {
                name = k.replace("norm_out.", "conv_norm_out.");
            } else {
                name = k; // conv_in, conv_out, quant_conv, post_quant_conv
            }
            m.put(name, shape == null ? RemappedSource.Entry.of(key) : RemappedSource.Entry.reshaped(key, shape));
        }
        if (m.isEmpty()) {
            throw new MarbleException(file + ": no VAE tensors (first_stage_model.*) in this checkpoint");
        }
        return m;
    }

    /** "0.conv1.weight" (LDM block index + rest) → "0.conv1.weight" with LDM resnet renames. */
    private static String resnet(String rest) {
        String[] ir = rest.split("\\.", 2);
        return ir[0] + "." + resnetPart(ir[1]);
    }

    private static String resnetPart(String rest) {
        return rest.startsWith("nin_shortcut.") ? "conv_shortcut." + rest.substring("nin_shortcut.".length()) : rest;
    }

    private ObjectNode deriveVaeConfig() {
        JsonNode dd = yaml.at("/model/params/first_stage_config/params/ddconfig");
        ObjectNode c = NODES.objectNode();
        c.put("_class_name", "AutoencoderKL");
        int levels = countIndices(VAE + "encoder.down.");
        c.put("in_channels", source.shape(VAE + "encoder.conv_in.weight")[1]);
        c.put("out_channels", source.shape(VAE + "decoder.conv_out.weight")[0]);
        c.put("latent_channels", source.shape(VAE + "post_quant_conv.weight")[1]);
        ArrayNode blocks = c.putArray("block_out_channels");
        ArrayNode down = c.putArray("down_block_types");
        ArrayNode up = c.putArray("up_block_types");
        for (int i = 0; i < levels; i++) {
            blocks.add(source.shape(VAE + "encoder.down." + i + ".block.0.conv1.weight")[0]);
            down.add("DownEncoderBlock2D");
            up.add("UpDecoderBlock2D");
        }
        c.put("layers_per_block", countIndices(VAE + "encoder.down.0.block."));
        c.put("norm_num_groups", dd.path("norm_num_groups").asInt(32));
        c.put("act_fn", "silu");
        c.put("mid_block_add_attention", source.contains(VAE + "encoder.mid.attn_1.q.weight"));
        c.put("scaling_factor", yaml.at("/model/params/scale_factor").asDouble(0.18215));
        c.put("sample_size", dd.path("resolution").asInt(512));
        return c;
    }

    // ---------------------------------------------------------------- text encoder

    /** SD 1.x stores transformers' CLIPTextModel as it is, under a prefix. */
    private Map<String, RemappedSource.Entry> hfClipKeys() {
        Map<String, RemappedSource.Entry> m = new LinkedHashMap<>();
        for (String key : source.keys()) {
            if (key.startsWith(CLIP_HF + "text_model.") && !key.endsWith("position_ids")) {
                m.put(key.substring(CLIP_HF.length()), RemappedSource.Entry.of(key));
            }
        }
        if (m.isEmpty()) {
            throw new MarbleException(file + ": no text encoder tensors (cond_stage_model.*) in this checkpoint");
        }
        return m;
    }

    /**
     * SD 2.x stores OpenCLIP's text tower. Its last layer is dropped, as diffusers does: SD 2 reads the
     * penultimate layer's output through the final layer norm.
     */
    private Map<String, RemappedSource.Entry> openClipKeys() {
        Map<String, RemappedSource.Entry> m = new LinkedHashMap<>();
        String p = CLIP_OPEN;
        String t = "text_model.";
        m.put(t + "embeddings.token_embedding.weight", RemappedSource.Entry.of(p + "token_embedding.weight"));
        m.put(t + "embeddings.position_embedding.weight", RemappedSource.Entry.of(p + "positional_embedding"));
        m.put(t + "final_layer_norm.weight", RemappedSource.Entry.of(p + "ln_final.weight"));
        m.put(t + "final_layer_norm.bias", RemappedSource.Entry.of(p + "ln_final.bias"));
        int layers = countIndices(p + "transformer.resblocks.") - 1;
        long hidden = source.shape(p + "token_embedding.weight")[1];
        for (int i = 0; i < layers; i++) {
            String src = p + "transformer.resblocks." + i + ".";
            String dst = t + "encoder.layers." + i + ".";
            String[][] pairs = {
                {"ln_1", "layer_norm1"}, {"ln_2", "layer_norm2"}, {"attn.out_proj", "self_attn.out_proj"},
                {"mlp.c_fc", "mlp.fc1"}, {"mlp.c_proj", "mlp.fc2"},
            };
            for (String[] pr : pairs) {
                m.put(dst + pr[1] + ".weight", RemappedSource.Entry.of(src + pr[0] + ".weight"));
                m.put(dst + pr[1] + ".bias", RemappedSource.Entry.of(src + pr[0] + ".bias"));
            }
            String[] qkv = {"q_proj", "k_proj", "v_proj"};
            for (int j = 0; j < 3; j++) {
                m.put(dst + "self_attn." + qkv[j] + ".weight",
                        RemappedSource.Entry.rows(src + "attn.in_proj_weight", j * hidden, (j + 1) * hidden));
                m.put(dst + "self_attn." + qkv[j] + ".bias",
                        RemappedSource.Entry.rows(src + "attn.in_proj_bias", j * hidden, (j + 1) * hidden));
            }
        }
        return m;
    }

    private ObjectNode deriveTextEncoderConfig(boolean openClip) {
        JsonNode given = yaml.at("/model/params/cond_stage_config/params/clip_text_config");
        ObjectNode c = NODES.objectNode();
        c.put("model_type", "clip_text_model");
        long[] tok = textEncoder.shape("text_model.embeddings.token_embedding.weight"); // [V, H]
        long hidden = tok[1];
        c.put("vocab_size", tok[0]);
        c.put("hidden_size", hidden);
        c.put("intermediate_size", textEncoder.shape("text_model.encoder.layers.0.mlp.fc1.weight")[0]);
        c.put("num_hidden_layers", countIndicesIn(textEncoder, "text_model.encoder.layers."));
        c.put("num_attention_heads", hidden / 64 > 0 ? hidden / 64 : 1);
        c.put("max_position_embeddings", textEncoder.shape("text_model.embeddings.position_embedding.weight")[0]);
        // OpenAI's CLIP ViT-L (SD 1.x, 768 wide) uses quick GELU; OpenCLIP's ViT-H (SD 2.x, 1024) uses GELU.
        c.put("hidden_act", openClip || hidden == 1024 ? "gelu" : "quick_gelu");
        c.put("layer_norm_eps", 1e-5);
        // openai/clip-vit-large-patch14's config carries these legacy ids; pooling depends on them.
        c.put("bos_token_id", 0);
        c.put("eos_token_id", 2);
        c.put("pad_token_id", 1);
        if (given.isObject()) {
            given.fields().forEachRemaining(e -> c.set(e.getKey(), e.getValue()));
        }
        return c;
    }

    // ---------------------------------------------------------------- scheduler

    private ObjectNode deriveSchedulerConfig(boolean sd2) {
        JsonNode p = yaml.at("/model/params");
        ObjectNode c = NODES.objectNode();
        c.put("_class_name", "PNDMScheduler");
        c.put("beta_start", p.path("linear_start").asDouble(0.00085));
        c.put("beta_end", p.path("linear_end").asDouble(0.012));
        c.put("beta_schedule", "scaled_linear");
        c.put("num_train_timesteps", p.path("timesteps").asInt(1000));
        c.put("steps_offset", 1);
        c.put("skip_prk_steps", true);
        c.put("set_alpha_to_one", false);
        c.put("clip_sample", false);
        c.put("timestep_spacing", "leading");
        String param = p.path("parameterization").asText(sd2 ? "v" : "eps");
        c.put("prediction_type", switch (param) {
            case "v" -> "v_prediction";
            case "eps" -> "epsilon";
            default -> throw new MarbleException(file + ": unsupported parameterization '" + param + "'");
        });
        return c;
    }

    // ---------------------------------------------------------------- helpers

    private boolean hasPrefix(String prefix) {
        for (String k : source.keys()) {
            if (k.startsWith(prefix)) {
                return true;
            }
        }
        return false;
    }

    /** 1 + the largest N among keys "{prefix}N.…", or 0. */
    int countIndices(String prefix) {
        return countIndicesIn(source, prefix);
    }

    static int countIndicesIn(TensorSource src, String prefix) {
        int max = -1;
        for (String k : src.keys()) {
            if (k.startsWith(prefix)) {
                String rest = k.substring(prefix.length());
                int dot = rest.indexOf('.');
                String head = dot < 0 ? rest : rest.substring(0, dot);
                if (!head.isEmpty() && head.chars().allMatch(Character::isDigit)) {
                    max = Math.max(max, Integer.parseInt(head));
                }
            }
        }
        return max + 1;
    }

    private static String sourceKey(RemappedSource r, String key) {
        return r.entry(key).sourceKey();
    }
}
