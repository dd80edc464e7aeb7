package dev.marble.weights.ldm;

import dev.marble.tensors.MarbleException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * diffusers key names → LDM single-file names: the inverse of the mapping {@link LdmCheckpoint}
 * reads with, for writing single-file checkpoints. Tested as a round trip over the golden checkpoint.
 */
public final class LdmNames {
    private static final Pattern DOWN = Pattern.compile("down_blocks\\.(\\d+)\\.(resnets|attentions|downsamplers)\\.(\\d+)\\.(.*)");
    private static final Pattern UP = Pattern.compile("up_blocks\\.(\\d+)\\.(resnets|attentions|upsamplers)\\.(\\d+)\\.(.*)");
    private static final Pattern MID = Pattern.compile("mid_block\\.(resnets|attentions)\\.(\\d+)\\.(.*)");
    private static final Pattern VAE_LEVEL = Pattern.compile("(encoder|decoder)\\.(down|up)_blocks\\.(\\d+)\\.(resnets|downsamplers|upsamplers)\\.(\\d+)\\.(.*)");
    private static final Pattern VAE_MID = Pattern.compile("(encoder|decoder)\\.mid_block\\.(resnets|attentions)\\.(\\d+)\\.(.*)");
    private static final String[][] RESNET = {
        {"norm1.", "in_layers.0."}, {"conv1.", "in_layers.2."}, {"norm2.", "out_layers.0."},
        {"conv2.", "out_layers.3."}, {"time_emb_proj.", "emb_layers.1."}, {"conv_shortcut.", "skip_connection."},
    };

    private LdmNames() {
    }

    /**
     * The LDM name of a UNet tensor. {@code layersPerBlock} is the config's; {@code upBlockHasAttention}
     * tells where an up block's upsampler sits (after its attention, or right after its resnet).
     */
    public static String unet(String key, int layersPerBlock, java.util.function.IntPredicate upBlockHasAttention) {
        int per = layersPerBlock + 1;
        String p = LdmCheckpoint.UNET;
        if (key.startsWith("time_embedding.linear_1.")) {
            return p + "time_embed.0." + key.substring("time_embedding.linear_1.".length());
        }
        if (key.startsWith("time_embedding.linear_2.")) {
            return p + "time_embed.2." + key.substring("time_embedding.linear_2.".length());
        }
        if (key.startsWith("conv_in.")) {
            return p + "input_blocks.0.0." + key.substring("conv_in.".length());
        }
        if (key.startsWith("conv_norm_out.")) {
            return p + "out.0." + key.substring("conv_norm_out.".length());
        }
        if (key.startsWith("conv_out.")) {
            return p + "out.2." + key.substring("conv_out.".length());
        }
        Matcher m = DOWN.matcher(key);
        if (m.matches()) {
            int b = Integer.parseInt(m.group(1));
            int l = Integer.parseInt(m.group(3));
            String rest = m.group(4);
            return switch (m.group(2)) {
                case "resnets" -> p + "input_blocks." + (1 + b * per + l) + ".0." + resnet(rest);
                case "attentions" -> p + "input_blocks." + (1 + b * per + l) + ".1." + rest;
                default -> p + "input_blocks." + (1 + b * per + layersPerBlock) + ".0.op." + strip(rest, "conv.");
            };
        }
        m = UP.matcher(key);
        if (m.matches()) {
            int b = Integer.parseInt(m.group(1));
            int l = Integer.parseInt(m.group(3));
            String rest = m.group(4);
            return switch (m.group(2)) {
                case "resnets" -> p + "output_blocks." + (b * per + l) + ".0." + resnet(rest);
                case "attentions" -> p + "output_blocks." + (b * per + l) + ".1." + rest;
                default -> p + "output_blocks." + (b * per + layersPerBlock) + "."
                        + (upBlockHasAttention.test(b) ? 2 : 1) + "." + rest;
            };
        }
        m = MID.matcher(key);
        if (m.matches()) {
            int i = Integer.parseInt(m.group(2));
            return m.group(1).equals("attentions") ? p + "middle_block.1." + m.group(3)
                    : p + "middle_block." + (i == 0 ? 0 : 2) + "." + resnet(m.group(3));
        }
        throw new MarbleException("no LDM name for UNet tensor '" + key + "'");
    }

    /** The LDM name of a VAE tensor; {@code levels} is the number of blocks (decoder levels are reversed). */
    public static String vae(String key, int levels) {
        String p = LdmCheckpoint.VAE;
        Matcher m = VAE_LEVEL.matcher(key);
        if (m.matches()) {
            int i = Integer.parseInt(m.group(3));
            String level = m.group(1) + "." + m.group(2) + "." + (m.group(2).equals("up") ? levels - 1 - i : i) + ".";
            String rest = m.group(6);
            return switch (m.group(4)) {
                case "resnets" -> p + level + "block." + m.group(5) + "." + vaeResnet(rest);
                case "downsamplers" -> p + level + "downsample." + rest;
                default -> p + level + "upsample." + rest;
            };
        }
        m = VAE_MID.matcher(key);
        if (m.matches()) {
            String mid = p + m.group(1) + ".mid.";
            if (m.group(2).equals("resnets")) {
                return mid + "block_" + (Integer.parseInt(m.group(3)) + 1) + "." + vaeResnet(m.group(4));
            }
            String[] pr = m.group(4).split("\\.(?=(weight|bias)$)");
            String proj = switch (pr[0]) {
                case "group_norm" -> "norm";
                case "to_q" -> "q";
                case "to_k" -> "k";
                case "to_v" -> "v";
                case "to_out.0" -> "proj_out";
                default -> throw new MarbleException("no LDM name for VAE tensor '" + key + "'");
            };
            return mid + "attn_1." + proj + "." + pr[1];
        }
        if (key.startsWith("encoder.conv_norm_out.") || key.startsWith("decoder.conv_norm_out.")) {
            return p + key.replace("conv_norm_out.", "norm_out.");
        }
        return p + key;
    }

    /** Whether the LDM form of a VAE tensor is a 1×1 convolution (the mid-block attention projections). */
    public static boolean vaeIsConv1x1(String key) {
        return key.contains(".mid_block.attentions.") && key.endsWith(".weight") && !key.contains("group_norm");
    }

    /** SD 1.x keeps transformers' CLIP names under a prefix. */
    public static String textEncoder(String key) {
        return LdmCheckpoint.CLIP_HF + key;
    }

    private static String resnet(String rest) {
        for (String[] r : RESNET) {
            if (rest.startsWith(r[0])) {
                return r[1] + rest.substring(r[0].length());
            }
        }
        return rest;
    }

    private static String vaeResnet(String rest) {
        return rest.startsWith("conv_shortcut.") ? "nin_shortcut." + rest.substring("conv_shortcut.".length()) : rest;
    }

    private static String strip(String s, String prefix) {
        return s.startsWith(prefix) ? s.substring(prefix.length()) : s;
    }
}
