package dev.marble.runtime.synth;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.tensors.MarbleException;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The tensor names and shapes a diffusers Stable Diffusion component has for a given config: what
 * {@code marble synth} fills with random values to make a full-size test model. It follows diffusers'
 * UNet2DConditionModel, AutoencoderKL and transformers' CLIPTextModel constructors; the tests check
 * it against the golden model's files, name for name and shape for shape.
 */
public final class ModelSchema {
    private final Map<String, long[]> tensors = new LinkedHashMap<>();

    private ModelSchema() {
    }

    /** UNet2DConditionModel's parameters. */
    public static Map<String, long[]> unet(JsonNode c) {
        ModelSchema s = new ModelSchema();
        long[] blocks = longs(c, "block_out_channels");
        int n = blocks.length;
        int layers = c.path("layers_per_block").asInt(2);
        long in = c.path("in_channels").asLong(4);
        long out = c.path("out_channels").asLong(4);
        long temb = blocks[0] * 4;
        long ctx = c.path("cross_attention_dim").asLong(768);
        boolean linear = c.path("use_linear_projection").asBoolean(false);
        JsonNode depthNode = c.path("transformer_layers_per_block");
        int[] depth = new int[n];
        for (int i = 0; i < n; i++) {
            depth[i] = depthNode.isArray() ? depthNode.get(i).asInt() : depthNode.asInt(1);
        }
        s.conv("conv_in", blocks[0], in, 3);
        s.linear("time_embedding.linear_1", temb, blocks[0]);
        s.linear("time_embedding.linear_2", temb, temb);
        for (int i = 0; i < n; i++) {
            String p = "down_blocks." + i + ".";
            boolean attn = c.path("down_block_types").get(i).asText().startsWith("CrossAttn");
            long prev = i == 0 ? blocks[0] : blocks[i - 1];
            for (int j = 0; j < layers; j++) {
                s.resnet(p + "resnets." + j, j == 0 ? prev : blocks[i], blocks[i], temb);
                if (attn) {
                    s.transformer(p + "attentions." + j, blocks[i], ctx, linear, depth[i]);
                }
            }
            if (i < n - 1) {
                s.conv(p + "downsamplers.0.conv", blocks[i], blocks[i], 3);
            }
        }
        long mid = blocks[n - 1];
        String midType = c.path("mid_block_type").asText("UNetMidBlock2DCrossAttn");
        s.resnet("mid_block.resnets.0", mid, mid, temb);
        if (midType.equals("UNetMidBlock2DCrossAttn")) {
            s.transformer("mid_block.attentions.0", mid, ctx, linear, depth[n - 1]);
        }
        s.resnet("mid_block.resnets.1", mid, mid, temb);
        for (int i = 0; i < n; i++) {
            String p = "up_blocks." + i + ".";
            boolean attn = c.path("up_block_types").get(i).asText().startsWith("CrossAttn");
            long outCh = blocks[n - 1 - i];
            long prevOut = blocks[n - 1 - Math.max(i - 1, 0)];
            long inCh = blocks[n - 1 - Math.min(i + 1, n - 1)];
            for (int j = 0; j <= layers; j++) {
                long skip = j == layers ? inCh : outCh;
                long resIn = j == 0 ? prevOut : outCh;
                s.resnet(p + "resnets." + j, resIn + skip, outCh, temb);
                if (attn) {
                    s.transformer(p + "attentions." + j, outCh, ctx, linear, depth[n - 1 - i]);
                }
            }
            if (i < n - 1) {
                s.conv(p + "upsamplers.0.conv", outCh, outCh, 3);
            }
        }
        s.norm("conv_norm_out", blocks[0]);
        s.conv("conv_out", out, blocks[0], 3);
        return s.tensors;
    }

    /** AutoencoderKL's parameters. */
    public static Map<String, long[]> vae(JsonNode c) {
        ModelSchema s = new ModelSchema();
        long[] blocks = longs(c, "block_out_channels");
        int n = blocks.length;
        int layers = c.path("layers_per_block").asInt(2);
        long latent = c.path("latent_channels").asLong(4);
        boolean midAttn = c.path("mid_block_add_attention").asBoolean(true);
        s.conv("encoder.conv_in", blocks[0], c.path("in_channels").asLong(3), 3);
        for (int i = 0; i < n; i++) {
            String p = "encoder.down_blocks." + i + ".";
            long prev = i == 0 ? blocks[0] : blocks[i - 1];
            for (int j = 0; j < layers; j++) {
                s.resnet(p + "resnets." + j, j == 0 ? prev : blocks[i], blocks[i], 0);
            }
            if (i < n - 1) {
                s.conv(p + "downsamplers.0.conv", blocks[i], blocks[i], 3);
            }
        }
        s.vaeMid("encoder.mid_block", blocks[n - 1], midAttn);
        s.norm("encoder.conv_norm_out", blocks[n - 1]);
        s.conv("encoder.conv_out", 2 * latent, blocks[n - 1], 3);
        s.conv("quant_conv", 2 * latent, 2 * latent, 1);
        s.conv("post_quant_conv", latent, latent, 1);
        s.conv("decoder.conv_in", blocks[n - 1], latent, 3);
        s.vaeMid("decoder.mid_block", blocks[n - 1], midAttn);
        for (int i = 0; i < n; i++) {
            String p = "decoder.up_blocks." + i + ".";
            long outCh = blocks[n - 1 - i];
            long prev = blocks[n - 1 - Math.max(i - 1, 0)];
            for (int j = 0; j <= layers; j++) {
                s.resnet(p + "resnets." + j, j == 0 ? prev : outCh, outCh, 0);
            }
            if (i < n - 1) {
                s.conv(p + "upsamplers.0.conv", outCh, outCh, 3);
            }
        }
        s.norm("decoder.conv_norm_out", blocks[0]);
        s.conv("decoder.conv_out", c.path("out_channels").asLong(3), blocks[0], 3);
        return s.tensors;
    }

    /** CLIPTextModel's parameters. */
    public static Map<String, long[]> textEncoder(JsonNode c) {
        ModelSchema s = new ModelSchema();
        long h = c.path("hidden_size").asLong();
        long inter = c.path("intermediate_size").asLong();
        s.put("text_model.embeddings.token_embedding.weight", c.path("vocab_size").asLong(), h);
        s.put("text_model.embeddings.position_embedding.weight", c.path("max_position_embeddings").asLong(77), h);
        int layers = c.path("num_hidden_layers").asInt();
        for (int i = 0; i < layers; i++) {
            String p = "text_model.encoder.layers." + i + ".";
            for (String proj : new String[] {"k_proj", "v_proj", "q_proj", "out_proj"}) {
                s.linear(p + "self_attn." + proj, h, h);
            }
            s.norm(p + "layer_norm1", h);
            s.linear(p + "mlp.fc1", inter, h);
            s.linear(p + "mlp.fc2", h, inter);
            s.norm(p + "layer_norm2", h);
        }
        s.norm("text_model.final_layer_norm", h);
        return s.tensors;
    }

    private void resnet(String p, long in, long out, long temb) {
        norm(p + ".norm1", in);
        conv(p + ".conv1", out, in, 3);
        if (temb > 0) {
            linear(p + ".time_emb_proj", out, temb);
        }
        norm(p + ".norm2", out);
        conv(p + ".conv2", out, out, 3);
        if (in != out) {
            conv(p + ".conv_shortcut", out, in, 1);
        }
    }

    private void transformer(String p, long c, long ctx, boolean linearProjection, int depth) {
        norm(p + ".norm", c);
        if (linearProjection) {
            linear(p + ".proj_in", c, c);
        } else {
            conv(p + ".proj_in", c, c, 1);
        }
        for (int t = 0; t < depth; t++) {
            String b = p + ".transformer_blocks." + t + ".";
            put(b + "attn1.to_q.weight", c, c);
            put(b + "attn1.to_k.weight", c, c);
            put(b + "attn1.to_v.weight", c, c);
            linear(b + "attn1.to_out.0", c, c);
            put(b + "attn2.to_q.weight", c, c);
            put(b + "attn2.to_k.weight", c, ctx);
            put(b + "attn2.to_v.weight", c, ctx);
            linear(b + "attn2.to_out.0", c, c);
            linear(b + "ff.net.0.proj", 8 * c, c); // GEGLU: hidden and gate, 4c each
            linear(b + "ff.net.2", c, 4 * c);
            norm(b + "norm1", c);
            norm(b + "norm2", c);
            norm(b + "norm3", c);
        }
        if (linearProjection) {
            linear(p + ".proj_out", c, c);
        } else {
            conv(p + ".proj_out", c, c, 1);
        }
    }

    private void vaeMid(String p, long c, boolean attention) {
        resnet(p + ".resnets.0", c, c, 0);
        if (attention) {
            norm(p + ".attentions.0.group_norm", c);
            for (String proj : new String[] {"to_q", "to_k", "to_v", "to_out.0"}) {
                linear(p + ".attentions.0." + proj, c, c);
            }
        }
        resnet(p + ".resnets.1", c, c, 0);
    }

    private void conv(String p, long out, long in, long k) {
        put(p + ".weight", out, in, k, k);
        put(p + ".bias", out);
    }

    private void linear(String p, long out, long in) {
        put(p + ".weight", out, in);
        put(p + ".bias", out);
    }

    private void norm(String p, long c) {
        put(p + ".weight", c);
        put(p + ".bias", c);
    }

    private void put(String name, long... shape) {
        tensors.put(name, shape);
    }

    private static long[] longs(JsonNode c, String field) {
        JsonNode a = c.path(field);
        if (!a.isArray() || a.isEmpty()) {
            throw new MarbleException("config: '" + field + "' must be a non-empty list");
        }
        long[] out = new long[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).asLong();
        }
        return out;
    }
}
