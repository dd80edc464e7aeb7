package dev.marble.runtime.unet;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.SafetensorsFile;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The UNet against every golden unet_* case, within the manifest's tolerance rule. */
class UNetGoldenTest {
    /** Shared by the test classes of this package; an auto arena is freed once the models are unreachable. */
    private static final Arena ARENA = Arena.ofAuto();
    private static final Map<String, UNet2DConditionModel> MODELS = new LinkedHashMap<>();

    static Path unetDir() {
        return Golden.dir().resolve("models/sd15-tiny/unet");
    }

    /** The sd15-tiny UNet from the fp32 or fp16 weight file, loaded once. */
    static synchronized UNet2DConditionModel model(String weights) {
        return MODELS.computeIfAbsent(weights, k -> {
            String file = k.equals("fp16") ? "diffusion_pytorch_model.fp16.safetensors"
                    : "diffusion_pytorch_model.safetensors";
            try (SafetensorsSource src = SafetensorsSource.open(unetDir().resolve(file))) {
                WeightScope w = WeightScope.root(src);
                UNet2DConditionModel m = UNet2DConditionModel.load(UNetConfig.read(unetDir().resolve("config.json")),
                        w, ARENA);
                assertEquals(Set.of(), w.unusedKeys(), "weights the model did not load");
                return m;
            }
        });
    }

    static Stream<String> unetCases() {
        return Golden.cases("unet").stream().map(c -> c.get("id").asText());
    }

    @Test
    void manifestListsTheExpectedCases() {
        Set<String> ids = new TreeSet<>(unetCases().toList());
        assertTrue(ids.containsAll(List.of("unet_sd15-tiny_b1_t999", "unet_sd15-tiny_b1_t999_fp16w",
                "unet_sd15-tiny_b1_t500", "unet_sd15-tiny_b1_t1", "unet_sd15-tiny_b1_t437.25",
                "unet_sd15-tiny_b2_cfg_t761", "unet_sd15-tiny_b1_nonsquare_t250", "unet_sd15-tiny_b2_pertimestep")),
                "unet cases in the manifest: " + ids);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("unetCases")
    void matchesGolden(String id) {
        JsonNode c = Golden.caseById(id);
        UNet2DConditionModel model = model(c.get("weights").asText());
        try (SafetensorsFile f = SafetensorsFile.open(Golden.dir().resolve(c.get("file").asText()));
                Workspace ws = new Workspace()) {
            Tensor out = model.forward(ws, f.tensor("sample"), f.tensor("timestep").toFloatArray(),
                    f.tensor("encoder_hidden_states"));
            Tensor ref = f.tensor("out");
            assertArrayEquals(ref.shape(), out.shape());
            float[] r = ref.toFloatArray();
            double err = Golden.maxAbsDiff(out.toFloatArray(), r);
            double atol = c.get("tolerance").get("out").get("rel").asDouble() * Golden.maxAbs(r);
            System.out.printf("%s: max|out-ref| = %.3g, atol = %.3g (%.3f of atol), peak workspace %d bytes%n",
                    id, err, atol, err / atol, ws.peakLiveBytes());
            assertTrue(err <= atol, id + ": max|out-ref| = " + err + " > atol " + atol);
        }
    }
}
