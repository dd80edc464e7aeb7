package dev.marble.weights.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.Q4_K;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.weights.Golden;
import dev.marble.weights.SafetensorsFile;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The golden tiny UNet through the default rules: what is quantized, what is narrowed, and how close it stays. */
class ModelQuantizerTest {
    @TempDir
    Path dir;

    @Test
    void quantizesTheGoldenUNetByTheDefaultRules() {
        Path in = Golden.path("models/sd15-tiny/unet/diffusion_pytorch_model.safetensors");
        Path out = dir.resolve("unet.safetensors");
        QuantRules rules = QuantRules.defaults(Q4_K.INSTANCE);
        ModelQuantizer.Stats stats;
        try (SafetensorsFile f = SafetensorsFile.open(in); Arena arena = Arena.ofShared()) {
            ModelQuantizer mq = new ModelQuantizer(rules, arena);
            for (String name : f.names()) {
                mq.add("unet", name, name, f.tensor(name));
            }
            stats = mq.stats();
            mq.write(out);
        }
        try (SafetensorsFile f = SafetensorsFile.open(in); QuantizedSource q = QuantizedSource.open(out);
                Arena arena = Arena.ofConfined()) {
            assertEquals(f.infos().keySet(), q.keys());
            int quantized = 0;
            for (String name : f.names()) {
                Tensor ref = f.tensor(name);
                boolean expectQuantized = QuantFormat.quantizable(ref.shape()) && !name.startsWith("conv_in.")
                        && !name.startsWith("conv_out.") && !name.startsWith("time_embedding.");
                if (expectQuantized) {
                    assertNotNull(q.quantized(name), name);
                    quantized++;
                    double rel = relativeRms(ref.toFloatArray(), q.quantized(name).dequantize(arena).toFloatArray());
                    assertTrue(rel < 0.1, name + ": relative rms error " + rel);
                } else {
                    assertNull(q.quantized(name), name);
                    Tensor t = q.get(name);
                    assertEquals(DType.F16, t.dtype(), name);
                    float[] r = ref.toFloatArray();
                    float[] v = t.toFloatArray();
                    for (int i = 0; i < r.length; i++) {
                        assertEquals(Float.float16ToFloat(Float.floatToFloat16(r[i])), v[i], name);
                    }
                }
            }
            assertEquals(quantized, stats.quantized());
            assertEquals(f.names().size() - quantized, stats.half());
            assertEquals(0, stats.kept());
            assertTrue(quantized > 100, "quantized " + quantized);
            try (SafetensorsFile written = SafetensorsFile.open(out)) {
                Map<String, String> meta = written.metadata();
                assertEquals("pt", meta.get("format"));
                assertEquals("1", meta.get(QuantStorage.VERSION_KEY));
            }
            System.out.printf("sd15-tiny unet, defaults q4_k: %d quantized, %d f16, %d -> %d bytes%n", stats.quantized(),
                    stats.half(), stats.bytesIn(), stats.bytesOut());
        }
    }

    @Test
    void f32ValuesBeyondTheHalfRangeStayF32() {
        Path out = dir.resolve("big.safetensors");
        try (Arena arena = Arena.ofShared()) {
            ModelQuantizer mq = new ModelQuantizer(QuantRules.defaults(Q4_K.INSTANCE), arena);
            mq.add("vae", "big", "big", Tensor.fromFloats(arena, new float[] {1, 70000}, 2));
            mq.add("vae", "small", "small", Tensor.fromFloats(arena, new float[] {1, 65504}, 2));
            assertEquals(new ModelQuantizer.Stats(0, 1, 1, 16, 12), mq.stats());
            mq.write(out);
        }
        try (SafetensorsFile f = SafetensorsFile.open(out)) {
            assertEquals(DType.F32, f.info("big").dtype());
            assertEquals(DType.F16, f.info("small").dtype());
        }
    }

    private static double relativeRms(float[] a, float[] b) {
        double e = 0;
        double s = 0;
        for (int i = 0; i < a.length; i++) {
            e += (a[i] - (double) b[i]) * (a[i] - (double) b[i]);
            s += (double) a[i] * a[i];
        }
        return Math.sqrt(e / s);
    }
}
