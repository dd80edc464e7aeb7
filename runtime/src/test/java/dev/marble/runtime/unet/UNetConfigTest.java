package dev.marble.runtime.unet;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.MarbleException;
import java.util.List;
import org.junit.jupiter.api.Test;

/** UNetConfig parsing: SD 1.x, SD 2.x and SDXL-style layouts, and refusal of unsupported features. */
class UNetConfigTest {
    /** The fields of an SD 2.1 (768-v) unet/config.json. */
    private static final String SD21 = """
            {
              "_class_name": "UNet2DConditionModel",
              "act_fn": "silu",
              "attention_head_dim": [5, 10, 20, 20],
              "block_out_channels": [320, 640, 1280, 1280],
              "center_input_sample": false,
              "cross_attention_dim": 1024,
              "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                   "DownBlock2D"],
              "downsample_padding": 1,
              "dual_cross_attention": false,
              "flip_sin_to_cos": true,
              "freq_shift": 0,
              "in_channels": 4,
              "layers_per_block": 2,
              "mid_block_scale_factor": 1,
              "norm_eps": 1e-05,
              "norm_num_groups": 32,
              "num_class_embeds": null,
              "only_cross_attention": false,
              "out_channels": 4,
              "sample_size": 96,
              "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
              "upcast_attention": true,
              "use_linear_projection": true
            }
            """;

    /** An SDXL-shaped layout without its addition embedding: per-block transformer depths. */
    private static final String XL_DEPTHS = """
            {
              "attention_head_dim": [5, 10, 20],
              "block_out_channels": [320, 640, 1280],
              "cross_attention_dim": 2048,
              "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
              "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
              "in_channels": 4, "out_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
              "transformer_layers_per_block": [1, 2, 10],
              "use_linear_projection": true
            }
            """;

    @Test
    void goldenSd15TinyConfig() {
        UNetConfig c = UNetConfig.read(Golden.dir().resolve("models/sd15-tiny/unet/config.json"));
        assertEquals(List.of(32, 64, 64, 64), c.blockOutChannels());
        assertEquals(List.of(8, 8, 8, 8), c.attentionHeads()); // attention_head_dim 8 = eight heads
        assertEquals(List.of(4, 8, 8, 8), List.of(c.headSize(0), c.headSize(1), c.headSize(2), c.headSize(3)));
        assertEquals(List.of(32, 32, 32, 32), c.crossAttentionDim());
        assertEquals(List.of(List.of(1, 1), List.of(1, 1), List.of(1, 1), List.of(1, 1)),
                c.transformerLayersPerBlock());
        assertEquals(List.of(List.of(1, 1, 1), List.of(1, 1, 1), List.of(1, 1, 1), List.of(1, 1, 1)),
                c.upTransformerLayersPerBlock());
        assertFalse(c.useLinearProjection());
        assertEquals(16, c.normNumGroups());
        assertEquals(1e-5f, c.normEps());
        assertEquals(128, c.timeEmbeddingDim()); // block_out_channels[0] * 4
        assertTrue(c.flipSinToCos());
        assertEquals(0f, c.freqShift());
        assertEquals(UNetConfig.MID_CROSS_ATTN, c.midBlockType());
    }

    @Test
    void sd21ConfigGivesPerBlockHeadsOf64() {
        UNetConfig c = UNetConfig.parse(SD21, "sd21");
        assertEquals(List.of(5, 10, 20, 20), c.attentionHeads());
        for (int i = 0; i < 4; i++) {
            assertEquals(64, c.headSize(i), "block " + i);
        }
        assertTrue(c.useLinearProjection());
        assertTrue(c.upcastAttention());
        assertEquals(List.of(1024, 1024, 1024, 1024), c.crossAttentionDim());
        assertEquals(List.of(2, 2, 2, 2), c.layersPerBlock());
        assertEquals(1, c.midTransformerLayers());
        assertEquals(1280, c.timeEmbeddingDim());
        assertEquals(32, c.normNumGroups());
        // keys an old config leaves out take diffusers' defaults
        assertEquals(3, c.convInKernel());
        assertNull(c.timeEmbeddingActFn());
        assertEquals(List.of(List.of(1, 1, 1), List.of(1, 1, 1), List.of(1, 1, 1), List.of(1, 1, 1)),
                c.upTransformerLayersPerBlock());
    }

    @Test
    void perBlockTransformerDepthsAreReversedForTheUpPath() {
        UNetConfig c = UNetConfig.parse(XL_DEPTHS, "xl-depths");
        assertEquals(List.of(List.of(1, 1), List.of(2, 2), List.of(10, 10)), c.transformerLayersPerBlock());
        assertEquals(List.of(List.of(10, 10, 10), List.of(2, 2, 2), List.of(1, 1, 1)),
                c.upTransformerLayersPerBlock());
        assertEquals(10, c.midTransformerLayers());
        assertEquals(List.of(64, 64, 64), List.of(c.headSize(0), c.headSize(1), c.headSize(2)));
    }

    @Test
    void perLayerDepthsNeedTheReverseList() {
        String perLayer = XL_DEPTHS.replace("[1, 2, 10]", "[[1, 1], [2, 3], [4, 5]]");
        assertRefused(perLayer, "reverse_transformer_layers_per_block");
        UNetConfig c = UNetConfig.parse(perLayer.replace("\"use_linear_projection\"",
                "\"reverse_transformer_layers_per_block\": [[6, 7, 8], [9, 10, 11], [1, 1, 1]],\n"
                        + "\"use_linear_projection\""), "asymmetric");
        assertEquals(List.of(List.of(1, 1), List.of(2, 3), List.of(4, 5)), c.transformerLayersPerBlock());
        assertEquals(List.of(List.of(6, 7, 8), List.of(9, 10, 11), List.of(1, 1, 1)),
                c.upTransformerLayersPerBlock());
        assertEquals(4, c.midTransformerLayers());
    }

    @Test
    void numAttentionHeadsWinsOverAttentionHeadDim() {
        UNetConfig c = UNetConfig.parse(SD21.replace("\"act_fn\"", "\"num_attention_heads\": 4, \"act_fn\""),
                "heads");
        assertEquals(List.of(4, 4, 4, 4), c.attentionHeads());
        assertEquals(80, c.headSize(0));
    }

    @Test
    void unsupportedFeaturesAreRefused() {
        assertRefused(SD21.replace("\"only_cross_attention\": false", "\"only_cross_attention\": true"),
                "only_cross_attention");
        assertRefused(SD21.replace("\"dual_cross_attention\": false", "\"dual_cross_attention\": true"),
                "dual_cross_attention");
        assertRefused(SD21.replace("\"num_class_embeds\": null", "\"num_class_embeds\": 1000"), "num_class_embeds");
        assertRefused(SD21.replace("\"act_fn\"", "\"addition_embed_type\": \"text_time\", \"act_fn\""),
                "addition_embed_type");
        assertRefused(SD21.replace("\"act_fn\"", "\"resnet_time_scale_shift\": \"scale_shift\", \"act_fn\""),
                "resnet_time_scale_shift");
        assertRefused(SD21.replace("\"silu\"", "\"mish\""), "act_fn", "mish");
        assertRefused(SD21.replace("\"DownBlock2D\"]", "\"AttnDownBlock2D\"]"), "AttnDownBlock2D");
        assertRefused(SD21.replace("[5, 10, 20, 20]", "[5, 10, 20]"), "attention_head_dim", "3 entries");
        assertRefused(SD21.replace("\"UpBlock2D\", ", ""), "same length");
        assertRefused(SD21.replace("\"cross_attention_dim\": 1024,", ""), "cross_attention_dim", "missing");
        assertRefused(SD21.replace("\"norm_num_groups\": 32", "\"norm_num_groups\": 0"), "norm_num_groups");
        assertRefused("[1, 2]", "not a JSON object");
    }

    private static void assertRefused(String json, String... parts) {
        MarbleException e = assertThrows(MarbleException.class, () -> UNetConfig.parse(json, "test.json"));
        assertTrue(e.getMessage().startsWith("test.json: "), e.getMessage());
        for (String p : parts) {
            assertTrue(e.getMessage().contains(p), "'" + p + "' not in: " + e.getMessage());
        }
    }
}
