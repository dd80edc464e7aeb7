package dev.marble.weights.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.quant.Q4_K;
import dev.marble.tensors.quant.Q8_0;
import java.util.List;
import org.junit.jupiter.api.Test;

class QuantRulesTest {
    private static final QuantRules RULES = QuantRules.defaults(Q4_K.INSTANCE);

    private static String target(String component, String name, long... shape) {
        return RULES.decide(component, name, shape).target().toString();
    }

    @Test
    void defaultsQuantizeUNetAndTextEncoderMatricesOnly() {
        // diffusers names
        assertEquals("q4_k", target("unet", "down_blocks.0.resnets.0.conv1.weight", 320, 320, 3, 3));
        assertEquals("q4_k", target("unet", "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight", 1280, 768));
        assertEquals("q4_k", target("unet", "up_blocks.1.resnets.0.time_emb_proj.weight", 1280, 1280));
        assertEquals("q4_k", target("text_encoder", "text_model.encoder.layers.0.mlp.fc1.weight", 3072, 768));
        assertEquals("f16", target("unet", "conv_in.weight", 320, 4, 3, 3));
        assertEquals("f16", target("unet", "conv_out.weight", 4, 320, 3, 3));
        assertEquals("f16", target("unet", "time_embedding.linear_1.weight", 1280, 320));
        assertEquals("f16", target("unet", "down_blocks.0.resnets.0.norm1.weight", 320));
        assertEquals("f16", target("unet", "down_blocks.0.resnets.0.conv1.bias", 320));
        assertEquals("f16", target("text_encoder", "text_model.embeddings.token_embedding.weight", 49408, 768));
        assertEquals("f16", target("text_encoder", "text_model.embeddings.position_embedding.weight", 77, 768));
        assertEquals("f16", target("vae", "decoder.up_blocks.0.resnets.0.conv1.weight", 512, 512, 3, 3));
        // LDM single-file names, seen without the component prefix
        assertEquals("q4_k", target("unet", "input_blocks.1.0.in_layers.2.weight", 320, 320, 3, 3));
        assertEquals("f16", target("unet", "input_blocks.0.0.weight", 320, 4, 3, 3));
        assertEquals("f16", target("unet", "out.2.weight", 4, 320, 3, 3));
        assertEquals("f16", target("unet", "time_embed.2.weight", 1280, 1280));
        assertEquals("q4_k", target("unet", "output_blocks.2.1.conv.weight", 1280, 1280, 3, 3));
        assertEquals("f16", target("text_encoder", "token_embedding.weight", 49408, 1024));
        assertEquals("f16", target("other", "alphas_cumprod", 1000));
        // 1x1 projections on the residual paths stay at 8 bits under a 4-bit type
        assertEquals("q8_0", target("unet", "up_blocks.0.resnets.0.conv_shortcut.weight", 1280, 2560, 1, 1));
        assertEquals("q8_0", target("unet", "output_blocks.0.0.skip_connection.weight", 1280, 2560, 1, 1));
        assertEquals("q8_0", target("unet", "down_blocks.0.attentions.0.proj_in.weight", 320, 320, 1, 1));
        assertEquals("q8_0", target("unet", "mid_block.attentions.0.proj_out.weight", 1280, 1280));
        assertEquals("f16", target("unet", "down_blocks.0.attentions.0.proj_in.bias", 320));
        assertEquals("q8_0", QuantRules.defaults(Q8_0.INSTANCE).decide("unet", "x.proj_in.weight", new long[] {64, 64})
                .target().toString());
    }

    @Test
    void aQuantizeRuleOnAShapeThatCannotBeQuantizedFallsBackToF16() {
        QuantRules.Decision d = RULES.decide("unet", "down_blocks.0.resnets.0.norm1.weight", new long[] {320});
        assertEquals("f16", d.target().toString());
        assertEquals("not quantizable", d.reason());
        assertEquals("f16", target("unet", "x.weight", 8, 48));
    }

    @Test
    void overridesComeFirst() {
        QuantRules r = RULES.withOverrides(List.of("unet:attn2\\.to_[kv]=q8_0", "vae:.*=keep", "time_emb_proj=f16"));
        assertEquals("q8_0", r.decide("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight",
                new long[] {320, 768}).target().toString());
        assertEquals("q4_k", r.decide("unet", "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_q.weight",
                new long[] {320, 320}).target().toString());
        assertEquals("keep", r.decide("vae", "decoder.conv_in.weight", new long[] {512, 4, 3, 3}).target().toString());
        assertEquals("f16", r.decide("unet", "up_blocks.0.resnets.0.time_emb_proj.weight", new long[] {1280, 1280})
                .target().toString());
        assertEquals("f16", r.decide("text_encoder", "x.time_emb_proj.weight", new long[] {64, 64}).target().toString());
        assertEquals(Q8_0.INSTANCE.id(), r.rules().get(0).target().toString());
        // a colon that is not a component prefix belongs to the regex
        assertEquals("q8_0", RULES.withOverrides(List.of("(?:attn1)=q8_0")).decide("unet", "a.attn1.to_q.weight",
                new long[] {64, 64}).target().toString());
    }

    @Test
    void badRulesAreOneLineErrors() {
        MarbleException a = assertThrows(MarbleException.class, () -> RULES.withOverrides(List.of("attn2")));
        assertEquals("--rule 'attn2': expected [COMPONENT:]REGEX=TYPE", a.getMessage());
        MarbleException b = assertThrows(MarbleException.class, () -> RULES.withOverrides(List.of("attn2=q3")));
        assertTrue(b.getMessage().startsWith("--rule 'attn2=q3': unknown quantization type 'q3'"), b.getMessage());
        MarbleException c = assertThrows(MarbleException.class, () -> RULES.withOverrides(List.of("unet:(=q8_0")));
        assertTrue(c.getMessage().startsWith("--rule 'unet:(=q8_0': bad regular expression"), c.getMessage());
    }
}
