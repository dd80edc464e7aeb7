package dev.marble.runtime.synth;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.weights.SafetensorsFile;
import dev.marble.weights.TensorInfo;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/** The schema must name exactly the tensors of the golden diffusers model, with their shapes. */
class ModelSchemaTest {
    private static Path golden(String rel) {
        String g = System.getProperty("marble.golden");
        if (g == null) {
            throw new IllegalStateException("system property marble.golden is not set");
        }
        return Path.of(g).resolve(rel);
    }

    @Test
    void unet() throws Exception {
        check("unet", "diffusion_pytorch_model.safetensors", ModelSchema::unet);
    }

    @Test
    void vae() throws Exception {
        check("vae", "diffusion_pytorch_model.safetensors", ModelSchema::vae);
    }

    @Test
    void textEncoder() throws Exception {
        check("text_encoder", "model.safetensors", ModelSchema::textEncoder);
    }

    private static void check(String component, String file, Function<JsonNode, Map<String, long[]>> schema)
            throws Exception {
        Path dir = golden("models/sd15-tiny/" + component);
        JsonNode config = new ObjectMapper().readTree(dir.resolve("config.json").toFile());
        Map<String, long[]> expected = schema.apply(config);
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve(file))) {
            assertEquals(new TreeSet<>(f.names()), new TreeSet<>(expected.keySet()), component + " names");
            for (Map.Entry<String, TensorInfo> e : f.infos().entrySet()) {
                assertArrayEquals(e.getValue().shape(), expected.get(e.getKey()), e.getKey());
            }
        }
    }
}
