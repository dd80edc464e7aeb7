package dev.marble.weights.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.Q4_0;
import dev.marble.tensors.quant.Q4_K;
import dev.marble.tensors.quant.Q8_0;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.Golden;
import dev.marble.weights.SafetensorsFile;
import dev.marble.weights.SafetensorsSource;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Quantizing on load must give exactly the weights that {@link ModelQuantizer} writes to a file, hold
 * only one module's temporaries at a time, and free them all on close.
 */
class QuantizingSourceTest {
    @TempDir
    Path dir;

    @Test
    void unetMatchesTheQuantizedFileAndFreesAsItGoes() {
        check("unet", "models/sd15-tiny/unet/diffusion_pytorch_model.safetensors", Q4_0.INSTANCE);
    }

    @Test
    void textEncoderMatchesTheQuantizedFile() {
        check("text_encoder", "models/sd15-tiny/text_encoder/model.safetensors", Q4_K.INSTANCE);
    }

    @Test
    void vaeIsNarrowedToHalfAndNothingIsQuantized() {
        check("vae", "models/sd15-tiny/vae/diffusion_pytorch_model.safetensors", Q8_0.INSTANCE);
    }

    /**
     * Reads every key of {@code file} (F32) in file order through a {@link QuantizingSource}, as a model
     * loader would, and compares each with the file {@link ModelQuantizer} writes by the same rules.
     */
    private void check(String component, String file, QuantFormat type) {
        QuantRules rules = QuantRules.defaults(type);
        Path in = Golden.path(file);
        Path out = dir.resolve(component + ".safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(in); Arena arena = Arena.ofShared()) {
            ModelQuantizer mq = new ModelQuantizer(rules, arena);
            for (String name : f.names()) {
                mq.add(component, name, name, f.tensor(name));
            }
            mq.write(out);
        }
        Map<String, Long> moduleBytes = new HashMap<>();
        long quantizedKeys = 0;
        try (SafetensorsSource base = SafetensorsSource.open(in); QuantizedSource ref = QuantizedSource.open(out)) {
            QuantizingSource q = QuantizingSource.wrap(base, component, rules);
            assertEquals(ref.keys(), q.keys());
            for (String k : new TreeSet<>(base.keys())) { // a module's weight and bias one after the other
                assertArrayEquals(base.get(k).shape(), q.shape(k), k);
                QuantizedTensor expected = ref.quantized(k);
                QuantizedTensor actual = q.quantized(k);
                String module = k.substring(0, k.lastIndexOf('.'));
                if (expected == null) {
                    assertNull(actual, k);
                    Tensor e = ref.get(k);
                    Tensor a = q.get(k);
                    assertEquals(e.dtype(), a.dtype(), k);
                    assertArrayEquals(e.shape(), a.shape(), k);
                    assertEquals(-1, e.data().mismatch(a.data()), k + ": values differ from the quantized file");
                    if (!a.data().scope().equals(base.get(k).data().scope())) { // a narrowed copy
                        moduleBytes.merge(module, a.byteSize(), Long::sum);
                    }
                } else {
                    assertNotNull(actual, k + " should be quantized");
                    assertSame(actual, q.quantized(k), "asked twice within a module, quantized once");
                    assertEquals(expected.format(), actual.format(), k);
                    assertArrayEquals(expected.shape(), actual.shape(), k);
                    for (int p = 0; p < expected.format().planes().size(); p++) {
                        MemorySegment e = expected.plane(p).data();
                        assertEquals(-1, e.mismatch(actual.plane(p).data()), k + ": plane " + p + " differs from the file");
                    }
                    String msg = assertThrows(MarbleException.class, () -> q.get(k)).getMessage();
                    assertEquals(base.describe() + ": tensor '" + k + "' is quantized on load (" + actual.format()
                            + ") and cannot be read as a plain tensor", msg);
                    moduleBytes.merge(module, actual.byteSize(), Long::sum);
                    quantizedKeys++;
                }
            }
            long largestModule = moduleBytes.values().stream().mapToLong(Long::longValue).max().orElse(0);
            long total = moduleBytes.values().stream().mapToLong(Long::longValue).sum();
            System.out.printf("%s at %s: %d quantized keys, temporaries %d bytes in all, peak %d bytes (largest module %d)%n",
                    component, type, quantizedKeys, q.totalBytes(), q.peakBytes(), largestModule);
            assertEquals(total, q.totalBytes());
            assertEquals(largestModule, q.peakBytes(), "at most one module's temporaries at a time");
            q.close();
            assertEquals(0, q.liveBytes());
            switch (component) {
                case "vae" -> assertEquals(0, quantizedKeys);
                case "unet" -> assertTrue(quantizedKeys > 0 && q.peakBytes() * 20 < q.totalBytes(), "peak " + q.peakBytes());
                default -> assertTrue(quantizedKeys > 0);
            }
        }
    }

    @Test
    void movingToAnotherModuleFreesThePreviousOne() {
        Path in = Golden.path("models/sd15-tiny/unet/diffusion_pytorch_model.safetensors");
        try (SafetensorsSource base = SafetensorsSource.open(in);
                QuantizingSource q = QuantizingSource.wrap(base, "unet", QuantRules.defaults(Q8_0.INSTANCE))) {
            QuantizedTensor w = q.quantized("down_blocks.0.resnets.0.conv1.weight");
            Tensor b = q.get("down_blocks.0.resnets.0.conv1.bias");
            assertTrue(w.plane(0).data().scope().isAlive() && b.data().scope().isAlive(), "same module: both held");
            q.quantized("down_blocks.0.resnets.0.conv2.weight");
            assertFalse(w.plane(0).data().scope().isAlive(), "conv1's planes are freed once conv2 is read");
            assertFalse(b.data().scope().isAlive());
            QuantizedTensor w2 = q.quantized("down_blocks.0.resnets.0.conv2.weight");
            q.close();
            assertFalse(w2.plane(0).data().scope().isAlive(), "close frees the rest");
            assertTrue(base.get("conv_in.weight").data().scope().isAlive(), "the base stays open");
            assertThrows(IllegalStateException.class, () -> q.quantized("down_blocks.0.resnets.0.conv1.weight"));
        }
    }

    @Test
    void aQuantizedSourceIsRefused() {
        Path in = Golden.path("models/sd15-tiny/text_encoder/model.safetensors");
        Path out = dir.resolve("text_encoder.safetensors");
        try (SafetensorsFile f = SafetensorsFile.open(in); Arena arena = Arena.ofShared()) {
            ModelQuantizer mq = new ModelQuantizer(QuantRules.defaults(Q8_0.INSTANCE), arena);
            for (String name : f.names()) {
                mq.add("text_encoder", name, name, f.tensor(name));
            }
            mq.write(out);
        }
        try (QuantizedSource ref = QuantizedSource.open(out)) {
            MarbleException e = assertThrows(MarbleException.class,
                    () -> QuantizingSource.wrap(ref, "text_encoder", QuantRules.defaults(Q4_K.INSTANCE)));
            assertEquals(out + ": already quantized (18 weights in q8_0); load it as it is, quantizing on load needs F32, F16"
                    + " or BF16 weights", e.getMessage());
        }
    }
}
