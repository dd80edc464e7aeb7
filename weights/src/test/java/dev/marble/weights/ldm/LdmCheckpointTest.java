package dev.marble.weights.ldm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.tensors.Tensor;
import dev.marble.weights.Golden;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.TensorSource;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.TreeSet;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The single-file checkpoint must expose exactly the diffusers fp16 variant's tensors and configs. */
class LdmCheckpointTest {
    private static LdmCheckpoint ckpt;
    private static final ObjectMapper JSON = new ObjectMapper();

    @BeforeAll
    static void open() {
        ckpt = LdmCheckpoint.open(Golden.path("models/sd15-tiny.original.safetensors"), null);
    }

    @AfterAll
    static void close() {
        ckpt.close();
    }

    @Test
    void unetTensorsMatchDiffusersFp16Variant() {
        compare(ckpt.unet(), "models/sd15-tiny/unet/diffusion_pytorch_model.fp16.safetensors");
    }

    @Test
    void vaeTensorsMatchDiffusersFp16Variant() {
        compare(ckpt.vae(), "models/sd15-tiny/vae/diffusion_pytorch_model.fp16.safetensors");
    }

    @Test
    void textEncoderTensorsMatchDiffusersFp16Variant() {
        compare(ckpt.textEncoder(), "models/sd15-tiny/text_encoder/model.fp16.safetensors");
    }

    @Test
    void everyTensorOfTheFileIsUsed() {
        assertEquals(new TreeSet<>(), ckpt.unmappedKeys());
    }

    @Test
    void derivedConfigsAgreeWithDiffusersConfigs() throws IOException {
        JsonNode unet = JSON.readTree(Golden.path("models/sd15-tiny/unet/config.json").toFile());
        for (String f : new String[] {"in_channels", "out_channels", "block_out_channels", "layers_per_block",
            "down_block_types", "up_block_types", "mid_block_type", "cross_attention_dim", "use_linear_projection",
            "attention_head_dim", "norm_num_groups", "transformer_layers_per_block", "flip_sin_to_cos", "freq_shift"}) {
            assertEquals(String.valueOf(unet.get(f)), String.valueOf(ckpt.unetConfig().get(f)), "unet " + f);
        }
        JsonNode vae = JSON.readTree(Golden.path("models/sd15-tiny/vae/config.json").toFile());
        for (String f : new String[] {"in_channels", "out_channels", "latent_channels", "block_out_channels",
            "layers_per_block", "norm_num_groups", "down_block_types", "up_block_types", "scaling_factor"}) {
            assertEquals(vae.get(f).asText(), ckpt.vaeConfig().get(f).asText(), "vae " + f);
        }
        JsonNode te = JSON.readTree(Golden.path("models/sd15-tiny/text_encoder/config.json").toFile());
        for (String f : new String[] {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "max_position_embeddings", "hidden_act", "vocab_size", "eos_token_id"}) {
            assertEquals(te.get(f).asText(), ckpt.textEncoderConfig().get(f).asText(), "text encoder " + f);
        }
        JsonNode sched = JSON.readTree(Golden.path("models/sd15-tiny/scheduler/scheduler_config.json").toFile());
        for (String f : new String[] {"beta_start", "beta_end", "beta_schedule", "num_train_timesteps", "steps_offset",
            "prediction_type", "skip_prk_steps", "set_alpha_to_one", "clip_sample"}) {
            assertEquals(sched.get(f).asText(), ckpt.schedulerConfig().get(f).asText(), "scheduler " + f);
        }
    }

    @Test
    void ldmNamesInvertTheMapping() {
        var unet = ckpt.unetConfig();
        int layers = unet.get("layers_per_block").asInt();
        var upTypes = unet.get("up_block_types");
        for (String k : ckpt.unet().keys()) {
            assertEquals(ckpt.unetSourceKey(k), LdmNames.unet(k, layers, b -> upTypes.get(b).asText().startsWith("CrossAttn")), k);
        }
        int levels = ckpt.vaeConfig().get("block_out_channels").size();
        for (String k : ckpt.vae().keys()) {
            assertEquals(ckpt.vaeSourceKey(k), LdmNames.vae(k, levels), k);
        }
        for (String k : ckpt.textEncoder().keys()) {
            assertEquals(ckpt.textEncoderSourceKey(k), LdmNames.textEncoder(k), k);
        }
    }

    private static void compare(TensorSource mapped, String diffusersFile) {
        try (SafetensorsSource ref = SafetensorsSource.open(Golden.path(diffusersFile))) {
            assertEquals(new TreeSet<>(ref.keys()), new TreeSet<>(mapped.keys()), "key sets of " + diffusersFile);
            for (String k : ref.keys()) {
                Tensor a = ref.get(k);
                Tensor b = mapped.get(k);
                assertTrue(Arrays.equals(a.shape(), b.shape()), k + ": " + a + " vs " + b);
                assertEquals(a.dtype(), b.dtype(), k);
                ByteBuffer x = a.data().asSlice(0, a.byteSize()).asByteBuffer();
                ByteBuffer y = b.data().asSlice(0, b.byteSize()).asByteBuffer();
                assertEquals(x, y, k + " values");
            }
        }
    }

    static Path golden(String rel) {
        return Golden.path(rel);
    }
}
