package dev.marble.weights;

import static dev.marble.weights.TestFiles.assertFails;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ShardedSourceTest {
    private static final String S1 = "model-00001-of-00002.safetensors";
    private static final String S2 = "model-00002-of-00002.safetensors";

    @TempDir
    Path dir;

    @BeforeEach
    void writeShards() {
        try (Arena arena = Arena.ofConfined()) {
            SafetensorsWriter.write(dir.resolve(S1), Map.of(
                    "a.weight", Tensor.fromFloats(arena, new float[] {1, 2, 3, 4}, 2, 2),
                    "a.bias", Tensor.fromFloats(arena, new float[] {5, 6}, 2)), Map.of("format", "pt"));
            Tensor half = Tensor.allocate(arena, DType.F16, 3);
            half.setFloat(-1.5f, 2);
            SafetensorsWriter.write(dir.resolve(S2), Map.of("b.weight", half), Map.of("format", "pt"));
        }
    }

    private Path index(String name, String json) throws IOException {
        return Files.writeString(dir.resolve(name), json);
    }

    private static String map(String aw, String ab, String bw) {
        return "{\"metadata\": {\"total_size\": 30}, \"weight_map\": {\"a.weight\": \"" + aw
                + "\", \"a.bias\": \"" + ab + "\", \"b.weight\": \"" + bw + "\"}}";
    }

    @Test
    void opensAllShardsAsOneSource() throws IOException {
        Path idx = index("model.safetensors.index.json", map(S1, S1, S2));
        try (SafetensorsSource s = SafetensorsSource.open(idx)) { // open(Path) recognises the index
            assertEquals(Set.of("a.weight", "a.bias", "b.weight"), s.keys());
            assertEquals(2, s.files().size());
            assertArrayEquals(new float[] {1, 2, 3, 4}, s.get("a.weight").toFloatArray());
            assertEquals(-1.5f, s.get("b.weight").getFloat(2));
            assertEquals(DType.F16, s.info("b.weight").dtype());
            assertEquals(idx.toString(), s.describe());
            assertEquals(Map.of("format", "pt"), s.metadata());
            assertFails(() -> s.get("c"), idx.toString(), "missing tensor 'c'");
        }
    }

    @Test
    void reportsMissingShardFile() throws IOException {
        Path idx = index("model.safetensors.index.json", map(S1, S1, "model-00003-of-00002.safetensors"));
        assertFails(() -> SafetensorsSource.openIndex(idx), idx.toString(),
                "shard file " + dir.resolve("model-00003-of-00002.safetensors") + " is missing",
                "1 tensor, e.g. 'b.weight'");
    }

    @Test
    void reportsTensorsNotInTheirShard() throws IOException {
        Path wrong = index("wrong.safetensors.index.json", map(S1, S2, S2));
        assertFails(() -> SafetensorsSource.openIndex(wrong), wrong.toString(),
                "tensor 'a.bias' is mapped to shard " + S2 + " but is in " + S1);
        Path absent = index("absent.safetensors.index.json",
                "{\"weight_map\": {\"a.weight\": \"" + S1 + "\", \"zzz\": \"" + S1 + "\"}}");
        assertFails(() -> SafetensorsSource.openIndex(absent), absent.toString(),
                "tensor 'zzz' is mapped to shard " + S1 + ", which does not contain it");
    }

    @Test
    void rejectsMalformedIndexes() throws IOException {
        Path noMap = index("a.safetensors.index.json", "{\"metadata\": {}}");
        assertFails(() -> SafetensorsSource.openIndex(noMap), noMap.toString(), "no \"weight_map\" object");
        Path empty = index("b.safetensors.index.json", "{\"weight_map\": {}}");
        assertFails(() -> SafetensorsSource.openIndex(empty), empty.toString(), "\"weight_map\" is empty");
        Path notString = index("c.safetensors.index.json", "{\"weight_map\": {\"a.weight\": 1}}");
        assertFails(() -> SafetensorsSource.openIndex(notString), notString.toString(),
                "weight_map entry for 'a.weight' is not a file name");
        Path climbing = index("d.safetensors.index.json", "{\"weight_map\": {\"a.weight\": \"../x.safetensors\"}}");
        assertFails(() -> SafetensorsSource.openIndex(climbing), climbing.toString(),
                "shard name '../x.safetensors' is not a file name beside the index");
        Path badJson = index("e.safetensors.index.json", "{\"weight_map\": ");
        assertFails(() -> SafetensorsSource.openIndex(badJson), badJson.toString(), "not valid JSON");
        Path array = index("f.safetensors.index.json", "[]");
        assertFails(() -> SafetensorsSource.openIndex(array), array.toString(), "expected a JSON object, found array");
        Path none = dir.resolve("none.safetensors.index.json");
        assertFails(() -> SafetensorsSource.openIndex(none), none.toString(), "no such file");
    }

    @Test
    void rejectsTensorsInTwoShards() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            SafetensorsWriter.write(dir.resolve(S2), Map.of("b.weight", Tensor.allocate(arena, DType.F16, 3),
                    "a.bias", Tensor.allocate(arena, DType.F32, 2)));
        }
        Path idx = index("model.safetensors.index.json", map(S1, S1, S2));
        String msg = assertFails(() -> SafetensorsSource.openIndex(idx), "tensor 'a.bias' is also in");
        assertTrue(msg.contains(S1) && msg.contains(S2), msg);
    }
}
