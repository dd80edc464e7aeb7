package dev.marble.weights.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.Q4_0;
import dev.marble.tensors.quant.Q4_K;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.SafetensorsFile;
import dev.marble.weights.SafetensorsWriter;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading Marble's quantized safetensors: a good file, and a crafted file for every inconsistency. */
class QuantizedSourceTest {
    private static final Arena ARENA = Arena.ofShared();
    private static QuantizedTensor conv;
    private static QuantizedTensor linear;
    private static Tensor bias;

    @TempDir
    Path dir;

    @BeforeAll
    static void build() {
        float[] v = new float[16 * 64 * 3 * 3];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) Math.sin(i * 0.37);
        }
        conv = QuantizedTensor.quantize("conv", Tensor.fromFloats(ARENA, v, 16, 64, 3, 3), Q4_K.INSTANCE, ARENA);
        linear = QuantizedTensor.quantize("lin", Tensor.fromFloats(ARENA, java.util.Arrays.copyOf(v, 8 * 96), 8, 96),
                Q4_0.INSTANCE, ARENA);
        bias = Tensor.fromFloats(ARENA, new float[] {1, 2, 3, 4, 5, 6, 7, 8}, 8);
    }

    @AfterAll
    static void free() {
        ARENA.close();
    }

    /** The tensors and metadata of a good file; {@code edit} crafts a bad one from them. */
    private Path file(Consumer<Map<String, Tensor>> editTensors, Consumer<Map<String, String>> editMeta) {
        Map<String, Tensor> t = new LinkedHashMap<>();
        Map<String, String> m = new LinkedHashMap<>();
        m.put("format", "pt");
        QuantStorage.put("block.conv.weight", conv, t, m);
        QuantStorage.put("block.proj.weight", linear, t, m);
        t.put("block.proj.bias", bias);
        editTensors.accept(t);
        editMeta.accept(m);
        Path p = dir.resolve("model.safetensors");
        SafetensorsWriter.write(p, t, m);
        return p;
    }

    private MarbleException fails(Consumer<Map<String, Tensor>> editTensors, Consumer<Map<String, String>> editMeta) {
        Path p = file(editTensors, editMeta);
        MarbleException e = assertThrows(MarbleException.class, () -> QuantizedSource.open(p).close());
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        assertTrue(e.getMessage().startsWith(p.toString() + ": "), e.getMessage());
        return e;
    }

    @Test
    void exposesQuantizedWeightsAsZeroCopyViewsAndPassesTheRestThrough() {
        Path p = file(t -> { }, m -> { });
        try (QuantizedSource src = QuantizedSource.open(p); SafetensorsFile raw = SafetensorsFile.open(p)) {
            assertEquals(Set.of("block.conv.weight", "block.proj.weight", "block.proj.bias"), src.keys());
            assertEquals(Set.of("block.conv.weight", "block.proj.weight"), src.quantizedKeys());
            QuantizedTensor q = src.quantized("block.conv.weight");
            assertEquals(Q4_K.INSTANCE, q.format());
            assertArrayEquals(new long[] {16, 64, 3, 3}, q.shape());
            assertEquals(16 * 9, q.rows());
            for (int i = 0; i < q.format().planes().size(); i++) {
                // the plane is the file's own bytes, not a copy
                Tensor inFile = raw.tensor("block.conv.weight." + q.format().planes().get(i).suffix());
                assertArrayEquals(conv.plane(i).data().asSlice(0, conv.plane(i).byteSize()).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                        q.plane(i).data().asSlice(0, q.plane(i).byteSize()).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
                assertEquals(inFile.byteSize(), q.plane(i).byteSize());
            }
            float[] a = new float[64];
            float[] b = new float[64];
            Q4_K.INSTANCE.dequantizeRow(q, 37, a, 0);
            Q4_K.INSTANCE.dequantizeRow(conv, 37, b, 0);
            assertArrayEquals(b, a);
            assertNull(src.quantized("block.proj.bias"));
            assertArrayEquals(bias.toFloatArray(), src.get("block.proj.bias").toFloatArray());
            MarbleException e = assertThrows(MarbleException.class, () -> src.get("block.proj.weight"));
            assertEquals(p + ": tensor 'block.proj.weight' is quantized (q4_0) and cannot be read as a plain tensor", e.getMessage());
            assertThrows(MarbleException.class, () -> src.get("block.proj.weight.qdata"));
        }
    }

    @Test
    void aPlainFilePassesThrough() {
        Path p = dir.resolve("plain.safetensors");
        SafetensorsWriter.write(p, Map.of("x.weight.qdata", bias), Map.of("format", "pt"));
        try (QuantizedSource src = QuantizedSource.open(p)) {
            assertEquals(Set.of("x.weight.qdata"), src.keys());
            assertTrue(src.quantizedKeys().isEmpty());
        }
    }

    @Test
    void missingScaleTensor() {
        MarbleException e = fails(t -> t.remove("block.proj.weight.qscale"), m -> { });
        assertTrue(e.getMessage().endsWith("tensor 'block.proj.weight' (q4_0): missing its qscale tensor 'block.proj.weight.qscale'"),
                e.getMessage());
    }

    @Test
    void missingMinTensor() {
        MarbleException e = fails(t -> t.remove("block.conv.weight.qmin"), m -> { });
        assertTrue(e.getMessage().contains("missing its qmin tensor"), e.getMessage());
    }

    @Test
    void wrongBlockCount() {
        MarbleException e = fails(t -> t.put("block.proj.weight.qscale", Tensor.allocate(ARENA, DType.F16, 8, 2)), m -> { });
        assertTrue(e.getMessage().endsWith("tensor 'block.proj.weight': plane 'qscale' has shape [8, 2], expected [8, 3]"
                + " for q4_0 of shape [8, 96]"), e.getMessage());
    }

    @Test
    void wrongDataSize() {
        MarbleException e = fails(t -> t.put("block.conv.weight.qdata", Tensor.allocate(ARENA, DType.U8, 16, 3, 3, 31)), m -> { });
        assertTrue(e.getMessage().contains("plane 'qdata' has shape [16, 3, 3, 31], expected [16, 3, 3, 32]"), e.getMessage());
    }

    @Test
    void wrongPlaneDtype() {
        MarbleException e = fails(t -> t.put("block.proj.weight.qscale", Tensor.allocate(ARENA, DType.F32, 8, 3)), m -> { });
        assertTrue(e.getMessage().endsWith("plane 'qscale' is F32, q4_0 stores it as F16"), e.getMessage());
    }

    @Test
    void unknownScheme() {
        MarbleException e = fails(t -> { }, m -> m.put(QuantStorage.TENSOR_KEY_PREFIX + "block.proj.weight",
                "{\"type\":\"q3_k\",\"block\":32,\"shape\":[8,96]}"));
        assertTrue(e.getMessage().endsWith("tensor 'block.proj.weight': unknown quantization type 'q3_k' (known: q8_0, q4_0, q4_k)"),
                e.getMessage());
    }

    @Test
    void unsupportedBlockSize() {
        MarbleException e = fails(t -> { }, m -> m.put(QuantStorage.TENSOR_KEY_PREFIX + "block.proj.weight",
                "{\"type\":\"q4_0\",\"block\":64,\"shape\":[8,96]}"));
        assertTrue(e.getMessage().endsWith("q4_0 block size 64 is not supported (this build reads 32)"), e.getMessage());
    }

    @Test
    void shapeThatDisagreesWithThePlanes() {
        MarbleException e = fails(t -> { }, m -> m.put(QuantStorage.TENSOR_KEY_PREFIX + "block.proj.weight",
                "{\"type\":\"q4_0\",\"block\":32,\"shape\":[8,64]}"));
        assertTrue(e.getMessage().contains("plane 'qdata' has shape [8, 48], expected [8, 32]"), e.getMessage());
    }

    @Test
    void badVersion() {
        MarbleException e = fails(t -> { }, m -> m.put(QuantStorage.VERSION_KEY, "2"));
        assertTrue(e.getMessage().endsWith("Marble quantization format version '2' is not supported (this build reads 1)"),
                e.getMessage());
    }

    @Test
    void missingVersion() {
        MarbleException e = fails(t -> { }, m -> m.remove(QuantStorage.VERSION_KEY));
        assertTrue(e.getMessage().endsWith("marble.quant.tensor.* metadata without marble.quant.version"), e.getMessage());
    }

    @Test
    void entryThatIsNotJson() {
        MarbleException e = fails(t -> { }, m -> m.put(QuantStorage.TENSOR_KEY_PREFIX + "block.proj.weight", "q4_0"));
        assertTrue(e.getMessage().endsWith("tensor 'block.proj.weight': metadata is not valid JSON"), e.getMessage());
    }

    @Test
    void planeWithoutEntry() {
        MarbleException e = fails(t -> { }, m -> m.remove(QuantStorage.TENSOR_KEY_PREFIX + "block.proj.weight"));
        assertTrue(e.getMessage().matches(".*: tensor 'block\\.proj\\.weight\\.q(data|scale)' looks like a quantized plane but"
                + " __metadata__ has no marble\\.quant\\.tensor\\.block\\.proj\\.weight entry"), e.getMessage());
    }

    @Test
    void weightStoredTwice() {
        MarbleException e = fails(t -> t.put("block.proj.weight", bias), m -> { });
        assertTrue(e.getMessage().endsWith("tensor 'block.proj.weight' is stored both plain and quantized"), e.getMessage());
    }

    @Test
    void metadataEntriesRoundTrip() {
        for (QuantFormat f : QuantFormat.all()) {
            QuantStorage.Entry e = QuantStorage.parse("x", QuantStorage.entry(f, new long[] {320, 640, 3, 3}));
            assertEquals(f, e.format());
            assertArrayEquals(new long[] {320, 640, 3, 3}, e.shape());
        }
        assertEquals("{\"type\":\"q4_k\",\"block\":32,\"super_block\":256,\"shape\":[320,64]}",
                QuantStorage.entry(Q4_K.INSTANCE, new long[] {320, 64}));
    }
}
