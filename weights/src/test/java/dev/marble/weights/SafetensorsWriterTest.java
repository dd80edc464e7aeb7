package dev.marble.weights;

import static dev.marble.weights.TestFiles.assertFails;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsWriterTest {
    @TempDir
    Path dir;

    private static Tensor randomBytes(Arena arena, Random rnd, DType dtype, long... shape) {
        Tensor t = Tensor.allocate(arena, dtype, shape);
        byte[] b = new byte[(int) t.byteSize()];
        rnd.nextBytes(b);
        MemorySegment.copy(b, 0, t.data(), ValueLayout.JAVA_BYTE, 0, b.length);
        return t;
    }

    /** The logical bytes of a (possibly strided) tensor, gathered element by element. */
    private static byte[] logicalBytes(Tensor t) {
        int es = t.dtype().byteSize();
        long[] shape = t.shape();
        long[] strides = t.strides();
        byte[] out = new byte[(int) t.byteSize()];
        long[] idx = new long[shape.length];
        for (int i = 0; i < t.numel(); i++) {
            long off = 0;
            for (int d = 0; d < idx.length; d++) {
                off += idx[d] * strides[d];
            }
            MemorySegment.copy(t.data(), ValueLayout.JAVA_BYTE, off * es, out, i * es, es);
            for (int d = idx.length - 1; d >= 0 && ++idx[d] == shape[d]; d--) {
                idx[d] = 0;
            }
        }
        return out;
    }

    private static byte[] bytes(Tensor t) {
        return t.data().asSlice(0, t.byteSize()).toArray(ValueLayout.JAVA_BYTE);
    }

    private static JsonNode header(Path f) throws IOException {
        byte[] all = Files.readAllBytes(f);
        long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        return new ObjectMapper().readTree(new String(all, 8, (int) n, StandardCharsets.UTF_8));
    }

    @Test
    void roundTripsEveryDtypeBitExactly() throws IOException {
        Random rnd = new Random(1);
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> in = new LinkedHashMap<>();
            for (DType d : DType.values()) {
                in.put("t_" + d.name(), randomBytes(arena, rnd, d, 3, 5)); // random bits: NaN payloads too
            }
            in.put("scalar", randomBytes(arena, rnd, DType.F32));
            in.put("empty", Tensor.allocate(arena, DType.BF16, 4, 0));
            in.put("unicode ✓/name.weight", randomBytes(arena, rnd, DType.I8, 7));
            Map<String, String> meta = Map.of("format", "pt", "note", "ünï \"quoted\"");
            Path f = dir.resolve("all.safetensors");
            SafetensorsWriter.write(f, in, meta);
            try (SafetensorsFile sf = SafetensorsFile.open(f)) {
                assertEquals(meta, sf.metadata());
                assertEquals(in.keySet(), new java.util.HashSet<>(sf.names()));
                for (Map.Entry<String, Tensor> e : in.entrySet()) {
                    Tensor t = sf.tensor(e.getKey());
                    assertEquals(e.getValue().dtype(), t.dtype(), e.getKey());
                    assertArrayEquals(e.getValue().shape(), t.shape(), e.getKey());
                    assertArrayEquals(bytes(e.getValue()), bytes(t), e.getKey());
                }
            }
        }
    }

    @Test
    void layoutFollowsTheReference() throws IOException {
        Random rnd = new Random(2);
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> in = new LinkedHashMap<>();
            in.put("z_u8", randomBytes(arena, rnd, DType.U8, 3));
            in.put("b_f16", randomBytes(arena, rnd, DType.F16, 3));
            in.put("a_f16", randomBytes(arena, rnd, DType.F16, 1));
            in.put("y_f64", randomBytes(arena, rnd, DType.F64, 2));
            in.put("c_f32", randomBytes(arena, rnd, DType.F32, 5));
            Path f = dir.resolve("layout.safetensors");
            SafetensorsWriter.write(f, in, Map.of("k", "v"));

            byte[] all = Files.readAllBytes(f);
            long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            assertEquals(0, n % 8, "header length is not a multiple of 8");
            String json = new String(all, 8, (int) n, StandardCharsets.UTF_8);
            String body = json.stripTrailing();
            assertTrue(body.startsWith("{") && body.endsWith("}"), json);
            assertTrue(json.substring(body.length()).chars().allMatch(c -> c == ' '), "padding is not spaces");
            assertTrue(body.length() > n - 8, "more padding than needed");

            // __metadata__ first, then tensors by element size (largest first), then name, in data order.
            List<String> keys = new ArrayList<>();
            header(f).fieldNames().forEachRemaining(keys::add);
            assertEquals(List.of("__metadata__", "y_f64", "c_f32", "a_f16", "b_f16", "z_u8"), keys);
            JsonNode h = header(f);
            long pos = 0;
            for (String k : keys.subList(1, keys.size())) {
                long begin = h.get(k).get("data_offsets").get(0).asLong();
                assertEquals(pos, begin, k);
                assertEquals(0, begin % DType.parse(h.get(k).get("dtype").asText()).byteSize(), k + " unaligned");
                pos = h.get(k).get("data_offsets").get(1).asLong();
            }
            assertEquals(all.length, 8 + n + pos);

            // Deterministic: the same tensors in another map order give the same bytes.
            Map<String, Tensor> shuffled = new HashMap<>();
            List<String> names = new ArrayList<>(in.keySet());
            java.util.Collections.reverse(names);
            names.forEach(k -> shuffled.put(k, in.get(k)));
            Path g = dir.resolve("again.safetensors");
            SafetensorsWriter.write(g, shuffled, Map.of("k", "v"));
            assertArrayEquals(all, Files.readAllBytes(g));
        }
    }

    @Test
    void writesNonContiguousViewsInLogicalOrder() {
        Random rnd = new Random(3);
        try (Arena arena = Arena.ofConfined()) {
            Tensor base = randomBytes(arena, rnd, DType.F32, 4, 6, 5);
            Tensor big = randomBytes(arena, rnd, DType.F64, 740, 720);  // 4.3 MB: gathers cross the chunk size
            Tensor bf = randomBytes(arena, rnd, DType.BF16, 3, 1, 7);
            Tensor mid = randomBytes(arena, rnd, DType.F16, 300, 200);
            Map<String, Tensor> in = new LinkedHashMap<>();
            in.put("permuted", base.permute(2, 0, 1));           // element-wise gather
            in.put("sliced_rows", base.slice(1, 2, 5));         // runs of 5 floats
            in.put("sliced_inner", base.slice(2, 1, 4));        // runs of 3 floats
            in.put("transposed", mid.permute(1, 0));             // single elements
            in.put("big_columns", big.slice(1, 3, 717));         // runs of 5712 bytes straddling chunk ends
            in.put("bf16_permuted", bf.permute(2, 1, 0));        // size-1 dim with an odd stride
            in.put("slice_of_permute", base.permute(1, 0, 2).slice(0, 1, 3));
            for (Tensor t : in.values()) {
                assertTrue(!t.isContiguous());
            }
            Path f = dir.resolve("views.safetensors");
            SafetensorsWriter.write(f, in);
            try (SafetensorsFile sf = SafetensorsFile.open(f)) {
                for (Map.Entry<String, Tensor> e : in.entrySet()) {
                    Tensor t = sf.tensor(e.getKey());
                    assertArrayEquals(e.getValue().shape(), t.shape(), e.getKey());
                    assertArrayEquals(logicalBytes(e.getValue()), bytes(t), e.getKey());
                }
                // Spot-check against the view's own indexing, independent of the gather helper above.
                assertEquals(base.getFloat(3, 1, 4), sf.tensor("permuted").getFloat(4, 3, 1));
                assertEquals(big.getFloat(739, 716), sf.tensor("big_columns").getFloat(739, 713));
            }
        }
    }

    /** 32 MiB of tensors are streamed from off-heap memory, not assembled in the heap. */
    @Test
    void streamsDataWithoutHeapCopies() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            Tensor big = Tensor.allocate(arena, DType.F32, 4, 1024, 1024);
            big.setFloat(-3.5f, 3, 1023, 1023);
            Tensor strided = big.slice(2, 0, 1000);
            Path f = dir.resolve("big.safetensors");
            SafetensorsWriter.write(f, Map.of("x", big.slice(0, 0, 1))); // warm up class loading
            var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
            long a0 = threads.getCurrentThreadAllocatedBytes();
            SafetensorsWriter.write(f, Map.of("big", big, "strided", strided));
            long allocated = threads.getCurrentThreadAllocatedBytes() - a0;
            assertTrue(allocated < 2 << 20, "writing 32 MiB allocated " + allocated + " heap bytes");
            assertTrue(Files.size(f) > 32_000_000L);
            try (SafetensorsFile sf = SafetensorsFile.open(f)) {
                assertEquals(-3.5f, sf.tensor("big").getFloat(3, 1023, 1023));
                assertEquals(0f, sf.tensor("strided").getFloat(3, 1023, 999));
            }
        }
    }

    /** A failure mid-write leaves the old file untouched and no temporary file behind. */
    @Test
    void failedWriteKeepsTheOldFileAndCleansUp() throws IOException {
        Path f = dir.resolve("model.safetensors");
        Files.writeString(f, "old contents");
        Tensor freed;
        Arena gone = Arena.ofConfined();
        freed = Tensor.allocate(gone, DType.F32, 1024);
        gone.close();
        try (Arena arena = Arena.ofConfined()) {
            Map<String, Tensor> in = new LinkedHashMap<>();
            in.put("a_good", Tensor.allocate(arena, DType.F32, 1 << 20)); // written first (same size, name order)
            in.put("b_freed", freed);
            assertFails(() -> SafetensorsWriter.write(f, in), f.toString(), "cannot read tensor data");
        }
        assertEquals("old contents", Files.readString(f));
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of(f), s.toList(), "a temporary file was left behind");
        }
    }

    @Test
    void rejectsBadArguments() {
        try (Arena arena = Arena.ofConfined()) {
            Tensor t = Tensor.allocate(arena, DType.F32, 2);
            Path f = dir.resolve("x.safetensors");
            assertFails(() -> SafetensorsWriter.write(f, Map.of("__metadata__", t)), f.toString(),
                    "'__metadata__' cannot be a tensor name");
            Map<String, Tensor> nullTensor = new HashMap<>();
            nullTensor.put("w", null);
            assertFails(() -> SafetensorsWriter.write(f, nullTensor), "tensor 'w' is null");
            Map<String, String> nullMeta = new HashMap<>();
            nullMeta.put("k", null);
            assertFails(() -> SafetensorsWriter.write(f, Map.of("w", t), nullMeta), "__metadata__ entry k");
            Path nowhere = dir.resolve("no/such/dir/x.safetensors");
            assertFails(() -> SafetensorsWriter.write(nowhere, Map.of("w", t)), nowhere.toString(), "does not exist");
            assertTrue(Files.notExists(f));
        }
    }

    /**
     * Overwriting a file that is still mapped is safe: the rename swaps the directory entry, so the
     * old views keep their bytes and the new file is complete.
     */
    @Test
    void overwritingAMappedFileKeepsOldViewsValid() {
        Path f = dir.resolve("m.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            Tensor a = Tensor.fromFloats(arena, new float[] {1, 2, 3}, 3);
            SafetensorsWriter.write(f, Map.of("a", a));
        }
        try (SafetensorsFile old = SafetensorsFile.open(f)) {
            Tensor oldA = old.tensor("a");
            try (Arena arena = Arena.ofConfined()) {
                Tensor b = Tensor.fromFloats(arena, new float[] {9, 8}, 2);
                SafetensorsWriter.write(f, Map.of("a", oldA, "b", b), Map.of("v", "2"));
            }
            assertArrayEquals(new float[] {1, 2, 3}, oldA.toFloatArray());
            try (SafetensorsFile now = SafetensorsFile.open(f)) {
                assertEquals(Map.of("v", "2"), now.metadata());
                assertArrayEquals(new float[] {1, 2, 3}, now.tensor("a").toFloatArray());
                assertArrayEquals(new float[] {9, 8}, now.tensor("b").toFloatArray());
            }
        }
    }

    @Test
    void sourceTensorsCanBeCopiedFileToFile() {
        Random rnd = new Random(4);
        Path src = dir.resolve("src.safetensors");
        try (Arena arena = Arena.ofConfined()) {
            SafetensorsWriter.write(src, Map.of("w", randomBytes(arena, rnd, DType.F16, 8, 3),
                    "b", randomBytes(arena, rnd, DType.F16, 8)));
        }
        Path dst = dir.resolve("dst.safetensors");
        try (SafetensorsSource s = SafetensorsSource.open(src)) {
            Map<String, Tensor> all = new LinkedHashMap<>();
            for (Iterator<String> it = s.keys().iterator(); it.hasNext(); ) {
                String k = it.next();
                all.put(k, s.get(k));
            }
            SafetensorsWriter.write(dst, all);
        }
        try {
            assertTrue(Arrays.equals(Files.readAllBytes(src), Files.readAllBytes(dst)));
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }
}
