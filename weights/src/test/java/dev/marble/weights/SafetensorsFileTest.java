package dev.marble.weights;

import static dev.marble.weights.TestFiles.assertFails;
import static dev.marble.weights.TestFiles.crafted;
import static dev.marble.weights.TestFiles.raw;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class SafetensorsFileTest {
    @TempDir
    Path dir;

    private static byte[] le(int bytes, long... values) {
        ByteBuffer b = ByteBuffer.allocate(bytes * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (long v : values) {
            switch (bytes) {
                case 1 -> b.put((byte) v);
                case 2 -> b.putShort((short) v);
                case 4 -> b.putInt((int) v);
                default -> b.putLong(v);
            }
        }
        return b.array();
    }

    private static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) {
            n += p.length;
        }
        ByteBuffer b = ByteBuffer.allocate(n);
        for (byte[] p : parts) {
            b.put(p);
        }
        return b.array();
    }

    /** Every dtype, with values whose bit patterns were worked out by hand (not by our own writer). */
    @Test
    void readsEveryDtypeAsZeroCopyViews() {
        byte[] data = concat(
                le(8, Double.doubleToLongBits(1.5), Double.doubleToLongBits(-0.25)), // F64 [0,16)
                le(4, Float.floatToIntBits(-2.25f)),                                  // F32 [16,20)
                le(2, 0x3C00, 0xC000),                                                // F16 1, -2 [20,24)
                le(2, 0x4040),                                                        // BF16 3 [24,26)
                le(8, -7),                                                            // I64 [26,34)
                le(4, 123456),                                                        // I32 [34,38)
                le(2, -300),                                                          // I16 [38,40)
                le(1, -5),                                                            // I8 [40,41)
                le(1, 200),                                                           // U8 [41,42)
                le(1, 1, 0),                                                          // BOOL [42,44)
                le(1, 0x38, 0xB8),                                                    // F8_E4M3 1, -1 [44,46)
                le(1, 0x3C, 0x40));                                                   // F8_E5M2 1, 2 [46,48)
        String h = """
                {"__metadata__": {"format": "pt", "note": "ünïcode ✓"},
                 "f64": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]},
                 "f32": {"dtype": "F32", "shape": [], "data_offsets": [16, 20]},
                 "f16": {"dtype": "F16", "shape": [1, 2], "data_offsets": [20, 24]},
                 "bf16": {"dtype": "BF16", "shape": [1], "data_offsets": [24, 26]},
                 "i64": {"dtype": "I64", "shape": [1], "data_offsets": [26, 34]},
                 "i32": {"dtype": "I32", "shape": [1], "data_offsets": [34, 38]},
                 "i16": {"dtype": "I16", "shape": [1], "data_offsets": [38, 40]},
                 "i8": {"dtype": "I8", "shape": [1], "data_offsets": [40, 41]},
                 "u8": {"dtype": "U8", "shape": [1], "data_offsets": [41, 42]},
                 "bool": {"dtype": "BOOL", "shape": [2], "data_offsets": [42, 44]},
                 "e4m3": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [44, 46]},
                 "e5m2": {"dtype": "F8_E5M2", "shape": [2], "data_offsets": [46, 48]},
                 "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [48, 48]}}""";
        Path f = crafted(dir.resolve("all.safetensors"), h, data);
        try (SafetensorsFile sf = SafetensorsFile.open(f)) {
            assertEquals(List.of("f64", "f32", "f16", "bf16", "i64", "i32", "i16", "i8", "u8", "bool", "e4m3", "e5m2",
                    "empty"), sf.names());
            assertEquals(Map.of("format", "pt", "note", "ünïcode ✓"), sf.metadata());
            assertEquals(48, sf.dataSize());
            Map<String, float[]> expected = Map.ofEntries(
                    Map.entry("f64", new float[] {1.5f, -0.25f}), Map.entry("f32", new float[] {-2.25f}),
                    Map.entry("f16", new float[] {1f, -2f}), Map.entry("bf16", new float[] {3f}),
                    Map.entry("i64", new float[] {-7f}), Map.entry("i32", new float[] {123456f}),
                    Map.entry("i16", new float[] {-300f}), Map.entry("i8", new float[] {-5f}),
                    Map.entry("u8", new float[] {200f}), Map.entry("bool", new float[] {1f, 0f}),
                    Map.entry("e4m3", new float[] {1f, -1f}), Map.entry("e5m2", new float[] {1f, 2f}),
                    Map.entry("empty", new float[0]));
            for (String name : sf.names()) {
                Tensor t = sf.tensor(name);
                TensorInfo info = sf.info(name);
                assertEquals(info.dtype(), t.dtype(), name);
                assertArrayEquals(info.shape(), t.shape(), name);
                assertArrayEquals(expected.get(name), t.toFloatArray(), name);
                assertEquals(info.byteSize(), t.byteSize(), name);
                assertTrue(t.numel() == 0 || t.data().isMapped(), name + " is not a view of the mapping");
            }
            assertEquals(DType.F8_E5M2, sf.info("e5m2").dtype());
            // Two views of one tensor share memory: nothing is copied.
            assertEquals(sf.tensor("i32").data().address(), sf.tensor("i32").data().address());
            assertEquals((byte) 200, sf.byteAt(41));
            assertFails(() -> sf.tensor("nope"), f.toString(), "missing tensor 'nope'");
        }
    }

    @Test
    void emptyHeaderAndSpacePaddingAreAccepted() {
        Path f = crafted(dir.resolve("empty.safetensors"), "{}      ", new byte[0]);
        try (SafetensorsFile sf = SafetensorsFile.open(f)) {
            assertTrue(sf.names().isEmpty());
            assertTrue(sf.metadata().isEmpty());
        }
        Path g = crafted(dir.resolve("nullmeta.safetensors"), "{\"__metadata__\": null}", new byte[0]);
        try (SafetensorsFile sf = SafetensorsFile.open(g)) {
            assertTrue(sf.metadata().isEmpty());
        }
    }

    @Test
    void closedFileRefusesReadsAndClosesTwiceQuietly() {
        Path f = crafted(dir.resolve("c.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", new byte[] {1, 2, 3, 4});
        SafetensorsFile sf = SafetensorsFile.open(f);
        sf.close();
        sf.close();
        assertFails(() -> sf.tensor("w"), f.toString(), "'w'", "closed");
    }

    private static final String W = "\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}";

    static Stream<Arguments> badHeaders() {
        String deep = "[".repeat(100_000);
        return Stream.of(
                Arguments.of("not JSON", "hello", 0, List.of("header is not valid JSON")),
                Arguments.of("truncated JSON", "{\"w\": {\"dtype\": ", 0, List.of("header is not valid JSON")),
                Arguments.of("JSON array", "[1, 2]", 0, List.of("header is not a JSON object")),
                Arguments.of("JSON string", "\"x\"", 0, List.of("header is not a JSON object")),
                Arguments.of("trailing object", "{} {}", 0, List.of("trailing content")),
                Arguments.of("trailing garbage", "{} xyz", 0, List.of("not valid JSON")),
                Arguments.of("deep nesting", "{\"w\": {\"shape\": " + deep, 0, List.of("not valid JSON", "tensor 'w'")),
                Arguments.of("duplicate name", "{" + W + ", " + W + "}", 8, List.of("duplicate tensor name 'w'")),
                Arguments.of("duplicate field", "{\"w\": {\"dtype\": \"F32\", \"dtype\": \"F16\", \"shape\": [2],"
                        + " \"data_offsets\": [0, 8]}}", 8, List.of("tensor 'w'", "duplicate field 'dtype'")),
                Arguments.of("duplicate metadata", "{\"__metadata__\": {}, \"__metadata__\": {}}", 0,
                        List.of("duplicate __metadata__")),
                Arguments.of("duplicate metadata key", "{\"__metadata__\": {\"a\": \"1\", \"a\": \"2\"}}", 0,
                        List.of("duplicate __metadata__ key 'a'")),
                Arguments.of("metadata not object", "{\"__metadata__\": [\"a\"]}", 0,
                        List.of("__metadata__ is not an object of string to string")),
                Arguments.of("metadata value not string", "{\"__metadata__\": {\"k\": 1}}", 0,
                        List.of("__metadata__ value for 'k' is not a string")),
                Arguments.of("entry not object", "{\"w\": 5}", 0, List.of("tensor 'w'", "entry is not an object")),
                Arguments.of("unknown dtype", "{\"w\": {\"dtype\": \"F128\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                        8, List.of("tensor 'w'", "unknown dtype \"F128\"")),
                Arguments.of("lower-case dtype", "{\"w\": {\"dtype\": \"f32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                        8, List.of("tensor 'w'", "unknown dtype \"f32\"")),
                Arguments.of("dtype not string", "{\"w\": {\"dtype\": 4, \"shape\": [2], \"data_offsets\": [0, 8]}}",
                        8, List.of("tensor 'w'", "dtype 4 is not a string")),
                Arguments.of("missing dtype", "{\"w\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
                        List.of("tensor 'w'", "missing field 'dtype'")),
                Arguments.of("missing shape", "{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", 8,
                        List.of("tensor 'w'", "missing field 'shape'")),
                Arguments.of("missing offsets", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8,
                        List.of("tensor 'w'", "missing field 'data_offsets'")),
                Arguments.of("shape not array", "{\"w\": {\"dtype\": \"F32\", \"shape\": 2, \"data_offsets\": [0, 8]}}",
                        8, List.of("tensor 'w'", "shape 2 is not an array")),
                Arguments.of("negative dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}",
                        8, List.of("tensor 'w'", "not a non-negative integer")),
                Arguments.of("fractional dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2.0], \"data_offsets\": [0, 8]}}",
                        8, List.of("tensor 'w'", "not a non-negative integer")),
                Arguments.of("string dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 8]}}",
                        8, List.of("tensor 'w'", "not a non-negative integer")),
                Arguments.of("huge dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [123456789012345678901234567890],"
                        + " \"data_offsets\": [0, 8]}}", 8, List.of("tensor 'w'", "not a non-negative integer")),
                Arguments.of("1e400 dim", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1e400], \"data_offsets\": [0, 8]}}",
                        8, List.of("tensor 'w'", "not a non-negative integer")),
                Arguments.of("2^62 elements", "{\"w\": {\"dtype\": \"U8\", \"shape\": [2147483648, 2147483648],"
                        + " \"data_offsets\": [0, 8]}}", 8, List.of("tensor 'w'", "needs 4611686018427387904 bytes")),
                Arguments.of("element count overflow", "{\"w\": {\"dtype\": \"U8\", \"shape\": [4611686018427387904, 4],"
                        + " \"data_offsets\": [0, 8]}}", 8, List.of("tensor 'w'", "more elements than a long")),
                Arguments.of("byte count overflow", "{\"w\": {\"dtype\": \"F64\", \"shape\": [4611686018427387904],"
                        + " \"data_offsets\": [0, 8]}}", 8, List.of("tensor 'w'", "more bytes than a long")),
                Arguments.of("negative offset", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [-8, 0]}}",
                        8, List.of("tensor 'w'", "are not non-negative integers")),
                Arguments.of("fractional offset", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8.5]}}",
                        8, List.of("tensor 'w'", "are not non-negative integers")),
                Arguments.of("three offsets", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4, 8]}}",
                        8, List.of("tensor 'w'", "is not [begin, end]")),
                Arguments.of("reversed offsets", "{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}",
                        8, List.of("tensor 'w'", "end before they begin")),
                Arguments.of("size mismatch", "{\"w\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}",
                        8, List.of("tensor 'w'", "needs 12 bytes but data_offsets [0,8] span 8")),
                Arguments.of("truncated data", "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}",
                        8, List.of("tensor 'w'", "run past the 8 data bytes (truncated?)")),
                Arguments.of("huge offsets", "{\"w\": {\"dtype\": \"U8\", \"shape\": [8],"
                        + " \"data_offsets\": [9223372036854775800, 9223372036854775807]}}", 8,
                        List.of("tensor 'w'", "run past")),
                Arguments.of("overlap", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                        + " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12,
                        List.of("tensor 'b'", "overlaps tensor 'a'")),
                Arguments.of("same range twice", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                        + " \"b\": {\"dtype\": \"I32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
                        List.of("overlaps tensor")),
                Arguments.of("hole", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]},"
                        + " \"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}", 12,
                        List.of("tensor 'b'", "hole of 4 unused data bytes")),
                Arguments.of("hole at start", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                        8, List.of("tensor 'a'", "hole of 4")),
                Arguments.of("trailing data", "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}",
                        8, List.of("4 unused data bytes after the last tensor", "'a'")),
                Arguments.of("data but no tensors", "{}", 8, List.of("8 unused data bytes")));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("badHeaders")
    void rejectsBadHeaders(String what, String header, int dataBytes, List<String> fragments) {
        Path f = crafted(dir.resolve("bad.safetensors"), header, new byte[dataBytes]);
        String[] all = Stream.concat(Stream.of(f.toString()), fragments.stream()).toArray(String[]::new);
        assertFails(() -> SafetensorsFile.open(f), all);
    }

    @Test
    void rejectsBadFraming() throws IOException {
        Path empty = Files.write(dir.resolve("empty.safetensors"), new byte[0]);
        assertFails(() -> SafetensorsFile.open(empty), empty.toString(), "file is empty");

        Path shortFile = Files.write(dir.resolve("short.safetensors"), new byte[] {2, 0, 0, 0, 0});
        assertFails(() -> SafetensorsFile.open(shortFile), shortFile.toString(), "5 bytes is too short");

        byte[] h = "{}".getBytes(StandardCharsets.UTF_8);
        Path zero = raw(dir.resolve("zero.safetensors"), 0, h, new byte[0]);
        assertFails(() -> SafetensorsFile.open(zero), zero.toString(), "header length 0 is not in 1..100000000");

        // Lengths that would need a huge buffer are refused before anything is allocated.
        Path huge = raw(dir.resolve("huge.safetensors"), -1L, h, new byte[0]);
        assertFails(() -> SafetensorsFile.open(huge), huge.toString(), "18446744073709551615 is not in 1..");
        Path over = raw(dir.resolve("over.safetensors"), 100_000_001L, h, new byte[0]);
        assertFails(() -> SafetensorsFile.open(over), over.toString(), "100000001 is not in 1..100000000");
        Path past = raw(dir.resolve("past.safetensors"), 50_000_000L, h, new byte[0]);
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long a0 = threads.getCurrentThreadAllocatedBytes();
        assertFails(() -> SafetensorsFile.open(past), past.toString(),
                "header length 50000000 runs past the end of the 10-byte file (truncated?)");
        long allocated = threads.getCurrentThreadAllocatedBytes() - a0;
        assertTrue(allocated < 1 << 20, "a 50 MB header length was allocated before the size check: " + allocated);

        Path latin1 = raw(dir.resolve("latin1.safetensors"), 4, new byte[] {'{', '}', (byte) 0xE9, ' '}, new byte[0]);
        assertFails(() -> SafetensorsFile.open(latin1), latin1.toString(), "header is not valid UTF-8");

        Path missing = dir.resolve("missing.safetensors");
        assertFails(() -> SafetensorsFile.open(missing), missing.toString(), "no such file");
        assertFails(() -> SafetensorsFile.open(dir), dir.toString(), "is a directory");
    }

    /**
     * An 8 GiB sparse file opens in milliseconds without heap in proportion to its size: only the
     * header is read, the data is mapped.
     */
    @Test
    void opensLargeSparseFileQuicklyWithoutHeap() throws IOException {
        long g = 1L << 30;
        String h = "{\"a\": {\"dtype\": \"F32\", \"shape\": [1024, 1024, 1024], \"data_offsets\": [0, " + 4 * g + "]},"
                + " \"b\": {\"dtype\": \"F16\", \"shape\": [1024, 1024, 1024], \"data_offsets\": [" + 4 * g + ", "
                + 6 * g + "]}, \"c\": {\"dtype\": \"U8\", \"shape\": [" + 2 * g + "], \"data_offsets\": [" + 6 * g
                + ", " + 8 * g + "]}}";
        byte[] hb = h.getBytes(StandardCharsets.UTF_8);
        Path f = dir.resolve("big.safetensors");
        long dataStart = 8 + hb.length;
        try (RandomAccessFile raf = new RandomAccessFile(f.toFile(), "rw")) {
            raf.write(le(8, hb.length));
            raf.write(hb);
            raf.setLength(dataStart + 8 * g);
            raf.seek(dataStart + 4 * g - 4); // last element of a
            raf.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(42.5f).array());
            raf.seek(dataStart + 8 * g - 1); // last byte of c
            raf.write(7);
        }
        // Load the parser classes first, so the timing below measures the open itself.
        Path small = crafted(dir.resolve("warm.safetensors"),
                "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", new byte[1]);
        SafetensorsFile.open(small).close();

        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long alloc0 = threads.getCurrentThreadAllocatedBytes();
        long t0 = System.nanoTime();
        try (SafetensorsFile sf = SafetensorsFile.open(f)) {
            long ms = (System.nanoTime() - t0) / 1_000_000;
            long allocated = threads.getCurrentThreadAllocatedBytes() - alloc0;
            assertTrue(Files.size(f) > 8 * g, "the file is not 8 GiB");
            assertTrue(ms < 200, "opening an 8 GiB file took " + ms + " ms");
            assertTrue(allocated < 1 << 20, "opening allocated " + allocated + " heap bytes");
            Tensor a = sf.tensor("a");
            assertEquals(42.5f, a.getFloat(1023, 1023, 1023));
            assertEquals(0f, a.getFloat(512, 3, 7));
            assertEquals(0f, sf.tensor("b").getFloat(1023, 0, 1));
            assertEquals(7f, sf.tensor("c").getFloat(2 * g - 1));
            assertEquals(8 * g, sf.dataSize());
        } finally {
            Files.delete(f);
        }
    }
}
