package dev.marble.runtime.vae;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.runtime.nn.GoldenCase;
import dev.marble.runtime.nn.Layout;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.TensorSource;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class AutoencoderKLTest {
    private static final Arena ARENA = Arena.ofShared();
    private static AutoencoderKLConfig config;
    private static AutoencoderKL fp32;
    private static AutoencoderKL fp16;

    @BeforeAll
    static void loadModels() {
        Path vae = GoldenCase.root().resolve("models/sd15-tiny/vae");
        config = AutoencoderKLConfig.read(vae.resolve("config.json"));
        fp32 = load(vae.resolve("diffusion_pytorch_model.safetensors"));
        fp16 = load(vae.resolve("diffusion_pytorch_model.fp16.safetensors"));
    }

    @AfterAll
    static void free() {
        ARENA.close();
    }

    /** Loads, then closes the file: the model must not depend on the mapping. Every key must be used. */
    private static AutoencoderKL load(Path file) {
        try (SafetensorsSource src = SafetensorsSource.open(file)) {
            WeightScope root = WeightScope.root(src);
            AutoencoderKL m = AutoencoderKL.load(config, root, ARENA);
            assertEquals(Set.of(), root.unusedKeys(), "unused vae weights in " + file);
            return m;
        }
    }

    private static AutoencoderKL model(GoldenCase g) {
        return g.fp16Weights() ? fp16 : fp32;
    }

    @Test
    void configIsReadFromJson() {
        assertEquals(List.of(16, 32, 32, 32), config.blockOutChannels());
        assertEquals(8, config.downscaleFactor());
        assertEquals(4, config.latentChannels());
        assertEquals(8, config.normNumGroups());
        assertEquals(2, config.layersPerBlock());
        assertEquals(0.18215f, config.scalingFactor());
        assertTrue(config.midBlockAddAttention());
    }

    @ParameterizedTest
    @ValueSource(strings = {"vae_decode_sd15-tiny_small_debug", "vae_decode_sd15-tiny_square",
            "vae_decode_sd15-tiny_square_fp16w", "vae_decode_sd15-tiny_nonsquare"})
    void decodeMatchesGolden(String id) {
        try (GoldenCase g = GoldenCase.open(id); Workspace ws = new Workspace()) {
            long t0 = System.nanoTime();
            Tensor out = model(g).decode(ws, g.tensor("z"), (name, t) -> compareDebug(g, ws, name, t));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            g.check("sample", out);
            System.out.printf(Locale.ROOT, "%s: decode %s in %d ms, peakLiveBytes %.2f MiB%n", id,
                    out, ms, ws.peakLiveBytes() / 1048576.0);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"vae_encode_sd15-tiny_small_debug", "vae_encode_sd15-tiny_square",
            "vae_encode_sd15-tiny_square_fp16w", "vae_encode_sd15-tiny_nonsquare"})
    void encodeMatchesGolden(String id) {
        try (GoldenCase g = GoldenCase.open(id); Workspace ws = new Workspace()) {
            long t0 = System.nanoTime();
            AutoencoderKL.LatentDist d = model(g).encode(ws, g.tensor("image"), (name, t) -> compareDebug(g, ws, name, t));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            g.check("mean", d.mean());
            g.check("std", d.std());
            System.out.printf(Locale.ROOT, "%s: encode in %d ms, peakLiveBytes %.2f MiB%n", id, ms,
                    ws.peakLiveBytes() / 1048576.0);
        }
    }

    /** Intermediate activations: printed against the case's debug tensors where it has them (not asserted). */
    private static void compareDebug(GoldenCase g, Workspace ws, String name, Tensor nhwc) {
        String key = "debug." + name;
        if (g.entry().path("debug").has(key)) {
            Tensor nchw = Layout.toNchw(ws, nhwc);
            g.compareDebug(key, nchw, 5e-5, false);
            ws.give(nchw);
        }
    }

    /**
     * Checkpoints from diffusers before 0.14 name the mid-block attention projections query / key /
     * value / proj_attn, and LDM conversions store them as 1×1 convs [C, C, 1, 1]: both load and
     * decode the same.
     */
    @Test
    void legacyAttentionKeysLoad() {
        Path file = GoldenCase.root().resolve("models/sd15-tiny/vae/diffusion_pytorch_model.safetensors");
        try (SafetensorsSource src = SafetensorsSource.open(file);
                GoldenCase g = GoldenCase.open("vae_decode_sd15-tiny_small_debug");
                Workspace ws = new Workspace()) {
            WeightScope root = WeightScope.root(new LegacyAttentionNames(src));
            AutoencoderKL legacy = AutoencoderKL.load(config, root, ARENA);
            assertEquals(Set.of(), root.unusedKeys());
            assertArrayEquals(fp32.decode(ws, g.tensor("z")).toFloatArray(),
                    legacy.decode(ws, g.tensor("z")).toFloatArray());
        }
    }

    /** The old names over a current file; projection weights reshaped to [C, C, 1, 1]. */
    private record LegacyAttentionNames(TensorSource src) implements TensorSource {
        private static final Map<String, String> OLD_TO_NEW = Map.of(
                ".query.", ".to_q.", ".key.", ".to_k.", ".value.", ".to_v.", ".proj_attn.", ".to_out.0.");

        private static String toNew(String key) {
            for (Map.Entry<String, String> e : OLD_TO_NEW.entrySet()) {
                key = key.replace(e.getKey(), e.getValue());
            }
            return key;
        }

        private static String toOld(String key) {
            for (Map.Entry<String, String> e : OLD_TO_NEW.entrySet()) {
                key = key.replace(e.getValue(), e.getKey());
            }
            return key;
        }

        @Override
        public boolean contains(String key) {
            return keys().contains(key);
        }

        @Override
        public Tensor get(String key) {
            Tensor t = src.get(toNew(key));
            return key.endsWith(".weight") && t.rank() == 2 ? t.reshape(t.dim(0), t.dim(1), 1, 1) : t;
        }

        @Override
        public Set<String> keys() {
            return src.keys().stream().map(LegacyAttentionNames::toOld).collect(Collectors.toSet());
        }

        @Override
        public String describe() {
            return "legacy-named " + src.describe();
        }

        @Override
        public void close() {
            src.close();
        }
    }

    /** Temporaries go back to the workspace: a second call allocates nothing new. */
    @Test
    void secondDecodeReusesTheWorkspace() {
        try (GoldenCase g = GoldenCase.open("vae_decode_sd15-tiny_small_debug"); Workspace ws = new Workspace()) {
            ws.give(fp32.decode(ws, g.tensor("z")));
            long allocated = ws.allocatedBytes();
            ws.give(fp32.decode(ws, g.tensor("z")));
            assertEquals(allocated, ws.allocatedBytes());
        }
    }

    @Test
    void badInputsFailWithOneLineMessages() {
        try (Arena a = Arena.ofShared(); Workspace ws = new Workspace()) {
            MarbleException e = assertThrows(MarbleException.class,
                    () -> fp32.decode(ws, Tensor.allocate(a, DType.F32, 1, 3, 4, 4)));
            assertTrue(e.getMessage().contains("[B, 4, H, W]"), e.getMessage());
            e = assertThrows(MarbleException.class, () -> fp32.encode(ws, Tensor.allocate(a, DType.F32, 1, 4, 32, 32)));
            assertTrue(e.getMessage().contains("[B, 3, H, W]"), e.getMessage());
            assertThrows(MarbleException.class, () -> fp32.decode(ws, Tensor.allocate(a, DType.F16, 1, 4, 4, 4)));
            // three halvings of a 4-pixel image leave nothing for the last 3x3 conv
            assertThrows(MarbleException.class, () -> fp32.encode(ws, Tensor.allocate(a, DType.F32, 1, 3, 2, 2)));
        }
    }
}
