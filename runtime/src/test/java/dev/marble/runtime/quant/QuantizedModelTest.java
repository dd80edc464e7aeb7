package dev.marble.runtime.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.marble.runtime.nn.GoldenCase;
import dev.marble.runtime.unet.UNet2DConditionModel;
import dev.marble.runtime.unet.UNetConfig;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.quant.Q4_K;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.TensorSource;
import dev.marble.weights.WeightScope;
import dev.marble.weights.quant.ModelQuantizer;
import dev.marble.weights.quant.QuantRules;
import dev.marble.weights.quant.QuantizedSource;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The golden sd15-tiny UNet from a file written by the quantizer runs on the quantized kernels and
 * gives exactly the output of the same UNet built from that file's weights decoded to F32: the
 * kernels decode to the formats' reference values, so any difference is a wiring or kernel bug.
 */
class QuantizedModelTest {
    /** A source's quantized weights decoded to F32 tensors, everything else as it is. */
    private record Decoded(TensorSource base, Arena arena) implements TensorSource {
        @Override
        public boolean contains(String key) {
            return base.contains(key);
        }

        @Override
        public Tensor get(String key) {
            QuantizedTensor q = base.quantized(key);
            return q != null ? q.dequantize(arena) : base.get(key);
        }

        @Override
        public Set<String> keys() {
            return base.keys();
        }

        @Override
        public String describe() {
            return base.describe() + " (decoded)";
        }

        @Override
        public void close() {
        }
    }

    @Test
    void quantizedUNetEqualsTheUNetOnItsDecodedWeights(@TempDir Path dir) {
        // q4_k's default rules keep the 1×1 projections at q8_0: two formats, in Linear and conv layers
        QuantFormat f = Q4_K.INSTANCE;
        Path file = dir.resolve("unet.safetensors");
        try (GoldenCase g = GoldenCase.open("unet_sd15-tiny_b1_t999")) {
            UNetConfig config = UNetConfig.read(g.modelDir().resolve("unet/config.json"));
            try (SafetensorsSource src = SafetensorsSource.open(g.modelDir().resolve("unet/diffusion_pytorch_model.safetensors"));
                    Arena arena = Arena.ofShared()) {
                ModelQuantizer mq = new ModelQuantizer(QuantRules.defaults(f), arena);
                for (String k : src.keys()) {
                    mq.add("unet", k, k, src.get(k));
                }
                mq.write(file);
            }
            try (QuantizedSource qs = QuantizedSource.open(file); Arena arena = Arena.ofShared(); Workspace ws = new Workspace()) {
                assertTrue(qs.quantizedKeys().size() > 20, qs.quantizedKeys().size() + " quantized weights");
                WeightScope qw = WeightScope.root(qs);
                Tensor out = UNet2DConditionModel.load(config, qw, arena)
                        .forward(ws, g.tensor("sample"), g.tensor("timestep").toFloatArray(), g.tensor("encoder_hidden_states"));
                assertEquals(Set.of(), qw.unusedKeys(), "unused keys");
                Tensor ref = UNet2DConditionModel.load(config, WeightScope.root(new Decoded(qs, arena)), arena)
                        .forward(ws, g.tensor("sample"), g.tensor("timestep").toFloatArray(), g.tensor("encoder_hidden_states"));
                float[] o = out.toFloatArray();
                float[] r = ref.toFloatArray();
                for (int i = 0; i < o.length; i++) {
                    if (Float.floatToRawIntBits(o[i]) != Float.floatToRawIntBits(r[i])) {
                        fail(f + ": output element " + i + " is " + o[i] + ", " + r[i] + " on the decoded weights");
                    }
                }
            }
        }
    }
}
