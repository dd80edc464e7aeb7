package dev.marble.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.MarbleException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The public API on the golden tiny model: determinism, threads, cancellation, errors. */
class MarbleTest {
    private static Marble model;

    @BeforeAll
    static void load() {
        String g = System.getProperty("marble.golden");
        if (g == null) {
            throw new IllegalStateException("system property marble.golden is not set");
        }
        model = Marble.load(Path.of(g, "models/sd15-tiny"));
    }

    @AfterAll
    static void close() {
        model.close();
    }

    private static GenerationRequest.Builder small(String prompt, long seed) {
        return GenerationRequest.builder().prompt(prompt).negativePrompt("blurry").steps(4).seed(seed).size(64, 128)
                .sampler("euler_a");
    }

    @Test
    void twoThreadsGiveTheImagesOfTwoSequentialRuns() throws Exception {
        GenerationRequest a = small("a red circle", 1).build();
        GenerationRequest b = small("a blue square", 2).build();
        GenerationResult.Image seqA = model.generate(a, GenerationListener.NONE).image();
        GenerationResult.Image seqB = model.generate(b, GenerationListener.NONE).image();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<GenerationResult> fa = pool.submit(() -> model.generate(a, GenerationListener.NONE));
            Future<GenerationResult> fb = pool.submit(() -> model.generate(b, GenerationListener.NONE));
            assertArrayEquals(seqA.pixels(), fa.get().image().pixels());
            assertArrayEquals(seqB.pixels(), fb.get().image().pixels());
            assertArrayEquals(seqA.latents(), fa.get().image().latents());
        } finally {
            pool.shutdown();
        }
        assertTrue(seqA.pixels().length == 64 * 128 * 3);
    }

    @Test
    void batchCountUsesConsecutiveSeeds() {
        GenerationResult two = model.generate(small("a cat", 10).batchCount(2).build(), GenerationListener.NONE);
        GenerationResult second = model.generate(small("a cat", 11).build(), GenerationListener.NONE);
        assertEquals(2, two.images().size());
        assertEquals(11, two.images().get(1).seed());
        assertArrayEquals(second.image().pixels(), two.images().get(1).pixels());
    }

    @Test
    void listenerSeesEveryStepAndCanCancel() {
        AtomicInteger calls = new AtomicInteger();
        assertThrows(GenerationCancelledException.class, () -> model.generate(small("x", 3).build(),
                (image, step, total, t) -> {
                    assertEquals(4, total);
                    return calls.incrementAndGet() < 2;
                }));
        assertEquals(2, calls.get());
    }

    @Test
    void parametersFollowA1111() {
        GenerationResult.Image img = model.generate(small("a dog", 5).cfgScale(7).build(), GenerationListener.NONE).image();
        String p = img.parameters();
        assertTrue(p.startsWith("a dog\nNegative prompt: blurry\nSteps: 4, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 64x128, Model hash: "), p);
        assertTrue(p.endsWith(", Model: sd15-tiny"), p);
    }

    @Test
    void guidanceRescaleChangesTheImageAndIsRecorded() {
        GenerationResult.Image plain = model.generate(small("a dog", 5).build(), GenerationListener.NONE).image();
        GenerationResult.Image zero = model.generate(small("a dog", 5).guidanceRescale(0).build(),
                GenerationListener.NONE).image();
        GenerationResult.Image rescaled = model.generate(small("a dog", 5).guidanceRescale(0.7).build(),
                GenerationListener.NONE).image();
        assertArrayEquals(plain.latents(), zero.latents());
        assertFalse(Arrays.equals(plain.latents(), rescaled.latents()), "rescale 0.7 left the latents as they were");
        assertTrue(rescaled.parameters().contains(", Guidance rescale: 0.7"), rescaled.parameters());
        assertFalse(plain.parameters().contains("Guidance rescale"), plain.parameters());
    }

    @Test
    void randomSeedIsReported() {
        GenerationResult.Image img = model.generate(GenerationRequest.builder().prompt("x").steps(1).size(64, 64).build(),
                GenerationListener.NONE).image();
        assertTrue(img.seed() >= 0 && img.seed() < (1L << 32));
        assertTrue(img.parameters().contains("Seed: " + img.seed() + ","));
    }

    @Test
    void badRequestsGetOneLineErrors() {
        MarbleException e = assertThrows(MarbleException.class,
                () -> model.generate(small("x", 1).size(60, 48).build(), GenerationListener.NONE));
        assertEquals("size 60x48: width and height must be multiples of 8", e.getMessage());
        e = assertThrows(MarbleException.class,
                () -> model.generate(small("x", 1).sampler("nope").build(), GenerationListener.NONE));
        assertTrue(e.getMessage().startsWith("unknown scheduler 'nope'; valid names: "), e.getMessage());
        e = assertThrows(MarbleException.class,
                () -> model.generate(small("x", 1).initLatents(new float[4], 1, 4, 1, 1).build(), GenerationListener.NONE));
        assertTrue(e.getMessage().startsWith("init latents: expected shape [1, 4, 16, 8]"), e.getMessage());
        assertThrows(MarbleException.class, () -> GenerationRequest.builder().prompt("x").steps(0).build());
        e = assertThrows(MarbleException.class, () -> GenerationRequest.builder().prompt("x").guidanceRescale(1.5).build());
        assertEquals("guidance rescale: must be between 0 and 1, got 1.5", e.getMessage());
    }
}
