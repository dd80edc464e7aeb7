package dev.marble.weights.ldm;

import dev.marble.tensors.MarbleException;
import dev.marble.weights.TensorSource;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * LDM's openaimodel UNet names → diffusers' UNet2DConditionModel names, and the structure the names
 * and shapes reveal. LDM numbers the blocks flat (input_blocks.N, output_blocks.N); diffusers groups
 * them per resolution level: input block N ≥ 1 is level (N−1) / (layers+1), output block N is up
 * block N / (layers+1).
 */
record UNetKeys(Map<String, RemappedSource.Entry> entries, int levels, int layersPerBlock, long[] blockOut,
        boolean[] downAttention, boolean[] upAttention, boolean midAttention, long contextDim,
        boolean linearProjection, int transformerDepth) {

    private static final String P = LdmCheckpoint.UNET;
    private static final Pattern BLOCK = Pattern.compile("(input_blocks|output_blocks)\\.(\\d+)\\.(\\d+)\\.(.*)");
    private static final Pattern MID = Pattern.compile("middle_block\\.(\\d+)\\.(.*)");

    static UNetKeys map(TensorSource src, Path file) {
        if (!src.contains(P + "input_blocks.0.0.weight")) {
            throw new MarbleException(file + ": no UNet tensors (model.diffusion_model.*) in this checkpoint");
        }
        int inputBlocks = LdmCheckpoint.countIndicesIn(src, P + "input_blocks.");
        int downsamplers = 0;
        for (int n = 1; n < inputBlocks; n++) {
            if (src.contains(P + "input_blocks." + n + ".0.op.weight")) {
                downsamplers++;
            }
        }
        int levels = downsamplers + 1;
        int resnets = inputBlocks - 1 - downsamplers;
        if (resnets <= 0 || resnets % levels != 0) {
            throw new MarbleException(file + ": cannot infer the UNet's layers per block from " + inputBlocks + " input blocks");
        }
        int layers = resnets / levels;
        long[] blockOut = new long[levels];
        boolean[] downAttn = new boolean[levels];
        boolean[] upAttn = new boolean[levels];
        for (int level = 0; level < levels; level++) {
            int n = 1 + level * (layers + 1);
            blockOut[level] = shape(src, file, P + "input_blocks." + n + ".0.out_layers.3.weight")[0];
            downAttn[level] = src.contains(P + "input_blocks." + n + ".1.norm.weight");
            upAttn[level] = src.contains(P + "output_blocks." + level * (layers + 1) + ".1.norm.weight");
        }
        boolean midAttn = src.contains(P + "middle_block.1.norm.weight");

        long context = -1;
        boolean linear = false;
        int depth = 0;
        Map<String, RemappedSource.Entry> m = new LinkedHashMap<>();
        for (String key : src.keys()) {
            if (!key.startsWith(P)) {
                continue;
            }
            String k = key.substring(P.length());
            String name = rename(k, layers, src, file);
            m.put(name, RemappedSource.Entry.of(key));
            if (name.endsWith("attn2.to_k.weight") && context < 0) {
                context = src.shape(key)[1];
            }
            if (name.endsWith(".proj_in.weight") && depth == 0) {
                linear = src.shape(key).length == 2;
                String prefix = key.substring(0, key.length() - "proj_in.weight".length()) + "transformer_blocks.";
                depth = LdmCheckpoint.countIndicesIn(src, prefix);
            }
        }
        return new UNetKeys(m, levels, layers, blockOut, downAttn, upAttn, midAttn, context, linear, Math.max(depth, 1));
    }

    private static long[] shape(TensorSource src, Path file, String key) {
        if (!src.contains(key)) {
            throw new MarbleException(file + ": missing tensor '" + key + "'");
        }
        return src.shape(key);
    }

    private static String rename(String k, int layers, TensorSource src, Path file) {
        if (k.startsWith("time_embed.0.")) {
            return "time_embedding.linear_1." + k.substring("time_embed.0.".length());
        }
        if (k.startsWith("time_embed.2.")) {
            return "time_embedding.linear_2." + k.substring("time_embed.2.".length());
        }
        if (k.startsWith("input_blocks.0.0.")) {
            return "conv_in." + k.substring("input_blocks.0.0.".length());
        }
        if (k.startsWith("out.0.")) {
            return "conv_norm_out." + k.substring("out.0.".length());
        }
        if (k.startsWith("out.2.")) {
            return "conv_out." + k.substring("out.2.".length());
        }
        Matcher mid = MID.matcher(k);
        if (mid.matches()) {
            int part = Integer.parseInt(mid.group(1));
            String rest = mid.group(2);
            return switch (part) {
                case 0 -> "mid_block.resnets.0." + resnet(rest);
                case 1 -> "mid_block.attentions.0." + rest;
                case 2 -> "mid_block.resnets.1." + resnet(rest);
                default -> throw new MarbleException(file + ": unexpected UNet tensor '" + P + k + "'");
            };
        }
        Matcher b = BLOCK.matcher(k);
        if (b.matches()) {
            int n = Integer.parseInt(b.group(2));
            int part = Integer.parseInt(b.group(3));
            String rest = b.group(4);
            if (b.group(1).equals("input_blocks")) {
                int block = (n - 1) / (layers + 1);
                int layer = (n - 1) % (layers + 1);
                if (rest.startsWith("op.")) {
                    return "down_blocks." + block + ".downsamplers.0.conv." + rest.substring(3);
                }
                return part == 0 ? "down_blocks." + block + ".resnets." + layer + "." + resnet(rest)
                        : "down_blocks." + block + ".attentions." + layer + "." + rest;
            }
            int block = n / (layers + 1);
            int layer = n % (layers + 1);
            if (part == 0) {
                return "up_blocks." + block + ".resnets." + layer + "." + resnet(rest);
            }
            if (rest.startsWith("conv.")) {
                return "up_blocks." + block + ".upsamplers.0." + rest;
            }
            return "up_blocks." + block + ".attentions." + layer + "." + rest;
        }
        throw new MarbleException(file + ": unexpected UNet tensor '" + P + k + "'");
    }

    /** LDM ResBlock parts → diffusers ResnetBlock2D. in_layers.1 and out_layers.1/2 are SiLU/dropout. */
    private static String resnet(String rest) {
        String[][] renames = {
            {"in_layers.0.", "norm1."}, {"in_layers.2.", "conv1."}, {"out_layers.0.", "norm2."},
            {"out_layers.3.", "conv2."}, {"emb_layers.1.", "time_emb_proj."}, {"skip_connection.", "conv_shortcut."},
        };
        for (String[] r : renames) {
            if (rest.startsWith(r[0])) {
                return r[1] + rest.substring(r[0].length());
            }
        }
        return rest;
    }
}
