package dev.marble.weights;

import static dev.marble.weights.TestFiles.assertFails;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class RenamedSourceTest {
    @TempDir
    Path dir;

    /** A small LDM-style checkpoint: UNet keys under model.diffusion_model., VAE under first_stage_model. */
    private Path checkpoint() {
        Path f = dir.resolve("sd.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            m.put("model.diffusion_model.input_blocks.0.0.weight", Tensor.fromFloats(arena, new float[] {1, 2}, 2));
            m.put("model.diffusion_model.input_blocks.0.0.bias", Tensor.fromFloats(arena, new float[] {3}, 1));
            m.put("model.diffusion_model.out.2.weight", Tensor.fromFloats(arena, new float[] {4, 5, 6}, 3));
            m.put("first_stage_model.decoder.conv_in.weight", Tensor.fromFloats(arena, new float[] {7}, 1));
            SafetensorsWriter.write(f, m);
        }
        return f;
    }

    @Test
    void presentsBaseTensorsUnderNewNames() {
        try (SafetensorsSource base = SafetensorsSource.open(checkpoint())) {
            Map<String, String> newToOld = new LinkedHashMap<>();
            newToOld.put("conv_in.weight", "model.diffusion_model.input_blocks.0.0.weight");
            newToOld.put("conv_in.bias", "model.diffusion_model.input_blocks.0.0.bias");
            newToOld.put("conv_out.weight", "model.diffusion_model.out.2.weight");
            RenamedSource unet = new RenamedSource(base, newToOld);
            assertEquals(Set.of("conv_in.weight", "conv_in.bias", "conv_out.weight"), unet.keys());
            assertTrue(unet.contains("conv_in.bias"));
            assertFalse(unet.contains("model.diffusion_model.out.2.weight"));
            assertArrayEquals(new float[] {4, 5, 6}, unet.get("conv_out.weight").toFloatArray());
            // A view, not a copy: the same mapped memory as the base tensor.
            assertEquals(base.get("model.diffusion_model.out.2.weight").data().address(),
                    unet.get("conv_out.weight").data().address());
            assertEquals("model.diffusion_model.out.2.weight", unet.baseKey("conv_out.weight"));
            assertEquals(Set.of("first_stage_model.decoder.conv_in.weight"), unet.unmappedBaseKeys());
            assertFails(() -> unet.get("nope"), base.describe(), "missing tensor 'nope'");

            // WeightScope reports unused keys in the new names.
            WeightScope w = WeightScope.root(unet);
            assertArrayEquals(new long[] {2}, w.at("conv_in").tensor("weight", 2).shape());
            w.at("conv_out").tensor("weight");
            assertEquals(Set.of("conv_in.bias"), w.unusedKeys());
            assertFails(() -> w.at("conv_in").tensor("weight", 3), "tensor 'conv_in.weight' has shape [2], expected [3]");

            // Closing a view leaves the shared base open.
            unet.close();
            assertEquals(7f, base.get("first_stage_model.decoder.conv_in.weight").getFloat(0));
        }
    }

    @Test
    void stripPrefixSelectsOneModel() {
        try (SafetensorsSource base = SafetensorsSource.open(checkpoint())) {
            RenamedSource vae = RenamedSource.stripPrefix(base, "first_stage_model.");
            assertEquals(Set.of("decoder.conv_in.weight"), vae.keys());
            assertEquals(7f, vae.get("decoder.conv_in.weight").getFloat(0));
            assertEquals(3, vae.unmappedBaseKeys().size());
            WeightScope w = WeightScope.root(vae);
            assertTrue(w.hasScope("decoder"));
            assertEquals(Set.of("decoder.conv_in.weight"), w.unusedKeys());
        }
    }

    @Test
    void rejectsMapsToMissingKeys() {
        try (SafetensorsSource base = SafetensorsSource.open(checkpoint())) {
            assertFails(() -> new RenamedSource(base, Map.of("conv_in.weight", "model.diffusion_model.nope")),
                    base.describe(), "key 'conv_in.weight' maps to tensor 'model.diffusion_model.nope', which is missing");
        }
    }
}
