package dev.marble.weights;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Reads every safetensors file of the golden folder and checks it against what the manifest and
 * README say about it. Expected values come from the manifest, never from our own reader.
 */
class GoldenFilesTest {
    private static final long BOS = 49406;
    private static final long EOS = 49407;

    private static DType manifestDtype(String s) {
        return switch (s) {
            case "float32" -> DType.F32;
            case "float16" -> DType.F16;
            case "bfloat16" -> DType.BF16;
            case "float64" -> DType.F64;
            case "int64" -> DType.I64;
            case "int32" -> DType.I32;
            case "uint8" -> DType.U8;
            case "bool" -> DType.BOOL;
            default -> throw new AssertionError("manifest dtype '" + s + "' is not known to this test");
        };
    }

    private static long[] shapeOf(JsonNode shape) {
        long[] s = new long[shape.size()];
        for (int i = 0; i < s.length; i++) {
            s[i] = shape.get(i).asLong();
        }
        return s;
    }

    private static double maxAbs(Tensor t) {
        double m = 0;
        if (t.dtype() == DType.I64) {
            for (long i = 0; i < t.numel(); i++) {
                m = Math.max(m, Math.abs((double) t.data().get(ValueLayout.JAVA_LONG_UNALIGNED, i * 8)));
            }
            return m;
        }
        for (float v : t.toFloatArray()) {
            m = Math.max(m, Math.abs(v));
        }
        return m;
    }

    private static long longAt(Tensor t, long row, long col) {
        return t.data().get(ValueLayout.JAVA_LONG_UNALIGNED, (row * t.dim(1) + col) * 8);
    }

    private static Set<Path> allSafetensors(Path golden) throws IOException {
        try (Stream<Path> s = Files.walk(golden)) {
            return new TreeSet<>(s.filter(p -> p.getFileName().toString().endsWith(".safetensors"))
                    .map(Path::normalize).toList());
        }
    }

    @Test
    void everyGoldenFileMatchesTheManifest() throws IOException {
        Path golden = TestFiles.golden();
        JsonNode manifest = JsonFiles.readObject(golden.resolve("manifest.json"));
        Set<Path> unchecked = allSafetensors(golden);
        assertTrue(unchecked.size() > 40, "only " + unchecked.size() + " safetensors files under " + golden);

        int tensors = 0;
        int scales = 0;
        for (JsonNode c : manifest.get("cases")) {
            String id = c.get("id").asText();
            Path file = golden.resolve(c.get("file").asText()).normalize();
            assertTrue(Files.isRegularFile(file), id + ": " + file + " is missing");
            try (SafetensorsFile sf = SafetensorsFile.open(file)) {
                assertEquals(id, sf.metadata().get("case"), file + ": __metadata__ names another case");
                Map<String, JsonNode> declared = new HashMap<>();
                for (String group : List.of("inputs", "outputs", "debug")) {
                    if (c.has(group)) {
                        c.get(group).properties().forEach(e -> declared.put(e.getKey(), e.getValue()));
                    }
                }
                assertEquals(new TreeSet<>(declared.keySet()), new TreeSet<>(sf.names()),
                        id + ": tensors in the file differ from the manifest's inputs/outputs/debug");
                for (Map.Entry<String, JsonNode> e : declared.entrySet()) {
                    TensorInfo info = sf.info(e.getKey());
                    assertEquals(manifestDtype(e.getValue().get("dtype").asText()), info.dtype(), id + " " + e.getKey());
                    assertArrayEquals(shapeOf(e.getValue().get("shape")), info.shape(), id + " " + e.getKey());
                    tensors++;
                }
                JsonNode outputs = c.get("outputs");
                for (String out : (Iterable<String>) () -> outputs.fieldNames()) {
                    assertTrue(c.get("tolerance").has(out), id + ": output '" + out + "' has no tolerance");
                }
                for (Map.Entry<String, JsonNode> e : c.get("tolerance").properties()) {
                    String out = e.getKey();
                    JsonNode tol = e.getValue();
                    assertTrue(outputs.has(out), id + ": tolerance for unknown output '" + out + "'");
                    Tensor t = sf.tensor(out);
                    if (tol.path("exact").asBoolean(false)) {
                        assertFalse(t.dtype().isFloatingPoint(), id + " " + out + ": exact tolerance on floats");
                        continue;
                    }
                    // The stored scale is max|ref| of the float32 reference, so it must match bit for bit.
                    double scale = tol.get("scale").asDouble();
                    assertEquals(scale, maxAbs(t), 0.0, id + " " + out + ": max|ref| differs from the stored scale");
                    assertEquals(tol.get("rel").asDouble() * scale, tol.get("atol").asDouble(), 1e-12 * scale,
                            id + " " + out + ": atol != rel * scale");
                    scales++;
                }
                if (c.get("component").asText().equals("tokenizer")) {
                    checkTokenIds(id, sf);
                }
            }
            unchecked.remove(file);
        }
        assertTrue(tensors > 500, "only " + tensors + " tensors checked");
        assertTrue(scales > 700, "only " + scales + " tolerance scales checked");

        for (Map.Entry<String, JsonNode> m : manifest.get("models").properties()) {
            unchecked.removeAll(checkModel(golden, m.getKey(), m.getValue()));
        }
        assertTrue(unchecked.isEmpty(), "golden files no check covers: " + unchecked);
    }

    /** BOS first, EOS last among the attended tokens, mask = min(untruncated length, 77) leading ones. */
    private static void checkTokenIds(String id, SafetensorsFile sf) {
        Tensor ids = sf.tensor("input_ids");
        Tensor mask = sf.tensor("attention_mask");
        Tensor len = sf.tensor("untruncated_length");
        long rows = ids.dim(0);
        long cols = ids.dim(1);
        assertEquals(BOS, longAt(ids, 0, 0), id + ": first row does not start with BOS");
        for (long r = 0; r < rows; r++) {
            assertEquals(BOS, longAt(ids, r, 0), id + " row " + r);
            long n = Math.min(len.data().get(ValueLayout.JAVA_LONG_UNALIGNED, r * 8), cols);
            for (long j = 0; j < cols; j++) {
                assertEquals(j < n ? 1 : 0, longAt(mask, r, j), id + " mask row " + r + " col " + j);
            }
            assertEquals(EOS, longAt(ids, r, n - 1), id + " row " + r + ": no EOS at the end of the tokens");
        }
    }

    /**
     * A model folder: the fp16 variant files hold exactly the float32 weights rounded to float16
     * (round to nearest even), and the single-file checkpoint holds the same float16 tensors under LDM
     * key prefixes. Returns the files checked.
     */
    private static List<Path> checkModel(Path golden, String name, JsonNode spec) {
        List<Path> checked = new ArrayList<>();
        DiffusersModel m = DiffusersModel.open(golden.resolve(spec.get("path").asText()));
        Map<String, Integer> variantContents = new HashMap<>();
        Map<String, Integer> counts = new HashMap<>();
        for (String c : List.of(DiffusersModel.UNET, DiffusersModel.VAE, DiffusersModel.TEXT_ENCODER)) {
            DiffusersModel.Component comp = m.component(c);
            checked.add(comp.findWeights(null).normalize());
            checked.add(comp.findWeights(DiffusersModel.FP16).normalize());
            try (TensorSource full = comp.weights(null); TensorSource half = comp.weights(DiffusersModel.FP16)) {
                assertEquals(full.keys(), half.keys(), name + " " + c);
                counts.put(c, full.keys().size());
                for (String k : full.keys()) {
                    Tensor f = full.get(k);
                    Tensor h = half.get(k);
                    assertEquals(DType.F32, f.dtype(), name + " " + c + " " + k);
                    assertEquals(DType.F16, h.dtype(), name + " " + c + " " + k);
                    assertArrayEquals(f.shape(), h.shape(), name + " " + c + " " + k);
                    long bad = firstUnrounded(f.data(), h.data(), f.numel());
                    if (bad >= 0) {
                        fail(name + " " + c + " " + k + "[" + bad + "]: fp16 " + h.toFloatArray()[(int) bad]
                                + " is not float32 " + f.toFloatArray()[(int) bad] + " rounded");
                    }
                    variantContents.merge(digest(h), 1, Integer::sum);
                }
            }
        }
        JsonNode single = spec.get("single_file");
        if (single != null) {
            Path file = golden.resolve(single.get("path").asText()).normalize();
            List<String> prefixes = new ArrayList<>();
            single.get("key_prefixes").forEach(p -> prefixes.add(p.asText()));
            Map<String, Integer> perPrefix = new HashMap<>();
            Map<String, Integer> contents = new HashMap<>();
            try (SafetensorsSource s = SafetensorsSource.open(file)) {
                for (String k : s.keys()) {
                    String prefix = prefixes.stream().filter(k::startsWith).findFirst()
                            .orElseThrow(() -> new AssertionError(file + ": key '" + k + "' has no known prefix"));
                    perPrefix.merge(prefix, 1, Integer::sum);
                    Tensor t = s.get(k);
                    assertEquals(DType.F16, t.dtype(), file + " " + k);
                    contents.merge(digest(t), 1, Integer::sum);
                }
            }
            // Prefixes in manifest order: UNet, VAE, text encoder.
            assertEquals(counts.get(DiffusersModel.UNET), perPrefix.get(prefixes.get(0)), file + " UNet keys");
            assertEquals(counts.get(DiffusersModel.VAE), perPrefix.get(prefixes.get(1)), file + " VAE keys");
            assertEquals(counts.get(DiffusersModel.TEXT_ENCODER), perPrefix.get(prefixes.get(2)), file + " CLIP keys");
            assertEquals(variantContents, contents, file + ": tensors differ from the fp16 variant files");
            checked.add(file);
        }
        return checked;
    }

    /** The first i where half[i] is not float32 full[i] rounded to nearest even, or -1. */
    private static long firstUnrounded(MemorySegment full, MemorySegment half, long n) {
        for (long i = 0; i < n; i++) {
            float v = full.get(ValueLayout.JAVA_FLOAT_UNALIGNED, i * 4);
            if (Float.floatToFloat16(v) != half.get(ValueLayout.JAVA_SHORT_UNALIGNED, i * 2)) {
                return i;
            }
        }
        return -1;
    }

    /** A tensor's bytes (its values, whatever its shape) as a hex digest plus size. */
    private static String digest(Tensor t) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            md.update(t.data().asSlice(0, t.byteSize()).asByteBuffer());
            return t.byteSize() + ":" + HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError(e);
        }
    }
}
