package dev.marble.weights.ldm;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.Q4_0;
import dev.marble.tensors.quant.Q8_0;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.Golden;
import dev.marble.weights.SafetensorsFile;
import dev.marble.weights.SafetensorsWriter;
import dev.marble.weights.TensorSource;
import dev.marble.weights.quant.ModelQuantizer;
import dev.marble.weights.quant.QuantRules;
import dev.marble.weights.quant.QuantStorage;
import dev.marble.weights.quant.QuantizedSource;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A quantized single-file checkpoint read back under diffusers names, and quantized weights through renames. */
class QuantizedCheckpointTest {
    /** Single-file prefixes → the component the rules see (as {@code marble quantize} maps them). */
    @TempDir
    Path dir;

    /**
     * The golden single file quantized to q8_0 by the default rules plus the VAE's attention projections
     * (1×1 convs in LDM, linears in diffusers), then opened: every component must show the plain
     * checkpoint's keys, shapes and configs, with the quantized weights equal to quantizing the plain
     * checkpoint's (diffusers-shaped) tensors directly.
     */
    @Test
    void quantizedSingleFileReadsBackUnderDiffusersNames() {
        Path in = Golden.path("models/sd15-tiny.original.safetensors");
        Path out = dir.resolve("tiny-q8.safetensors");
        QuantRules rules = QuantRules.defaults(Q8_0.INSTANCE).withOverrides(List.of("vae:attn_1\\.(q|k|v|proj_out)\\.weight$=q8_0"));
        try (SafetensorsFile f = SafetensorsFile.open(in); Arena arena = Arena.ofShared()) {
            ModelQuantizer mq = new ModelQuantizer(rules, arena);
            for (String name : f.names()) {
                LdmCheckpoint.Key k = LdmCheckpoint.Key.of(name);
                mq.add(k.component(), k.name(), name, f.tensor(name));
            }
            mq.write(out);
        }
        Path yaml = Golden.path("models/sd15-tiny.original.yaml");
        int[] quantized = new int[1];
        try (LdmCheckpoint plain = LdmCheckpoint.open(in, yaml); LdmCheckpoint q = LdmCheckpoint.open(out, yaml);
                Arena arena = Arena.ofConfined()) {
            assertEquals(plain.unetConfig(), q.unetConfig());
            assertEquals(plain.vaeConfig(), q.vaeConfig());
            assertEquals(plain.textEncoderConfig(), q.textEncoderConfig());
            assertEquals(plain.schedulerConfig(), q.schedulerConfig());
            assertEquals(plain.unmappedKeys(), q.unmappedKeys());
            TensorSource[][] pairs = {{plain.unet(), q.unet()}, {plain.vae(), q.vae()}, {plain.textEncoder(), q.textEncoder()}};
            for (TensorSource[] pair : pairs) {
                TensorSource p = pair[0];
                TensorSource s = pair[1];
                assertEquals(p.keys(), s.keys(), s.describe());
                for (String k : p.keys()) {
                    Tensor ref = p.get(k);
                    assertArrayEquals(ref.shape(), s.shape(k), k);
                    QuantizedTensor qt = s.quantized(k);
                    if (qt == null) {
                        assertEquals(-1, ref.data().mismatch(s.get(k).data()), k);
                        continue;
                    }
                    quantized[0]++;
                    assertArrayEquals(ref.shape(), qt.shape(), k);
                    QuantizedTensor direct = QuantizedTensor.quantize(k, ref, qt.format(), arena);
                    for (int i = 0; i < qt.format().planes().size(); i++) {
                        assertEquals(-1, direct.plane(i).data().mismatch(qt.plane(i).data()), k + " plane " + i);
                    }
                    MarbleException e = assertThrows(MarbleException.class, () -> s.get(k));
                    assertTrue(e.getMessage().startsWith(s.describe() + ": tensor '" + k + "' (stored as '"), e.getMessage());
                }
            }
            assertEquals(List.of(32L, 32L), List.of(q.vae().shape("decoder.mid_block.attentions.0.to_q.weight")[0],
                    q.vae().shape("decoder.mid_block.attentions.0.to_q.weight")[1]));
            assertNotNull(q.vae().quantized("decoder.mid_block.attentions.0.to_q.weight"), "reshaped 1x1 conv → linear");
            assertNotNull(q.textEncoder().quantized("text_model.encoder.layers.0.mlp.fc1.weight"));
            assertNull(q.unet().quantized("conv_in.weight"));
        }
        assertEquals(277 + 18 + 8, quantized[0], "UNet, text encoder and the VAE's attention weights");
    }

    /** A fused [3H, K] weight split into row ranges, a 1×1 conv viewed as a linear, and a reshape that cannot work. */
    @Test
    void rowRangesAndViewsOfQuantizedWeights() {
        Path file = dir.resolve("q.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> t = new LinkedHashMap<>();
            Map<String, String> m = new LinkedHashMap<>();
            QuantStorage.put("in_proj_weight", QuantizedTensor.quantize("in", ramp(arena, 96, 64), Q4_0.INSTANCE, arena), t, m);
            QuantStorage.put("conv.weight", QuantizedTensor.quantize("conv", ramp(arena, 48, 32, 1, 1), Q8_0.INSTANCE, arena), t, m);
            SafetensorsWriter.write(file, t, m);
        }
        try (QuantizedSource base = QuantizedSource.open(file); Arena arena = Arena.ofConfined()) {
            RemappedSource r = new RemappedSource(base, Map.of(
                    "k_proj.weight", RemappedSource.Entry.rows("in_proj_weight", 32, 64),
                    "proj.weight", RemappedSource.Entry.reshaped("conv.weight", 48, 32),
                    "bad.weight", RemappedSource.Entry.reshaped("conv.weight", 24, 64),
                    "far.weight", RemappedSource.Entry.rows("in_proj_weight", 64, 128)), "test view");
            float[] all = base.quantized("in_proj_weight").dequantize(arena).toFloatArray();
            QuantizedTensor k = r.quantized("k_proj.weight");
            assertArrayEquals(new long[] {32, 64}, k.shape());
            assertArrayEquals(java.util.Arrays.copyOfRange(all, 32 * 64, 64 * 64), k.dequantize(arena).toFloatArray());
            QuantizedTensor proj = r.quantized("proj.weight");
            assertArrayEquals(new long[] {48, 32}, proj.shape());
            assertArrayEquals(base.quantized("conv.weight").dequantize(arena).toFloatArray(), proj.dequantize(arena).toFloatArray());
            assertArrayEquals(new long[] {48, 32}, r.shape("proj.weight"));
            assertEquals("test view: tensor 'bad.weight' (stored as 'conv.weight', q8_0[48, 32, 1, 1]) cannot be viewed as [24, 64]:"
                    + " a quantized weight keeps its rows and its row length (dimension 1)",
                    assertThrows(MarbleException.class, () -> r.quantized("bad.weight")).getMessage());
            assertEquals("test view: tensor 'far.weight' (stored as 'in_proj_weight', q4_0[96, 64]) has fewer than 128 rows",
                    assertThrows(MarbleException.class, () -> r.quantized("far.weight")).getMessage());
            assertEquals("test view: tensor 'proj.weight' (stored as 'conv.weight') is quantized (q8_0) and cannot be read as a"
                    + " plain tensor", assertThrows(MarbleException.class, () -> r.get("proj.weight")).getMessage());
            assertNull(r.quantized("missing.weight"));
        }
    }

    /** Varied values (a sine of growing amplitude) in a new F32 tensor of {@code shape}. */
    private static Tensor ramp(Arena arena, long... shape) {
        int n = (int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) Math.sin(i * 0.61) * (1 + i % 7);
        }
        return Tensor.fromFloats(arena, v, shape);
    }
}
