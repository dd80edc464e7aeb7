package dev.marble.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.runtime.schedulers.GoldenCase;
import dev.marble.tensors.MarbleException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A model loaded in stages gives exactly the images of a resident one, on golden pipeline cases
 * (which it must also pass), and holds no component between generations.
 */
class StagedLoadingTest {
    private static Marble resident;
    private static Marble staged;

    @BeforeAll
    static void load() {
        Path model = GoldenCase.goldenDir().resolve("models/sd15-tiny");
        resident = Marble.load(model);
        staged = Marble.load(model, LoadOptions.defaults().withStaged(true));
    }

    @AfterAll
    static void close() {
        resident.close();
        staged.close();
    }

    /** The request a golden pipeline or img2img case describes. */
    private static GenerationRequest.Builder request(GoldenCase gc) {
        JsonNode kw = gc.params().get("call_kwargs");
        Matcher m = Pattern.compile("manual_seed\\((\\d+)\\)").matcher(kw.get("generator").asText());
        assertTrue(m.find());
        GenerationRequest.Builder b = GenerationRequest.builder().prompt(kw.get("prompt").asText())
                .negativePrompt(kw.get("negative_prompt").asText()).steps(kw.get("num_inference_steps").asInt())
                .cfgScale(kw.get("guidance_scale").asDouble()).sampler(gc.params().get("scheduler_id").asText())
                .seed(Long.parseLong(m.group(1)));
        if (kw.has("strength")) {
            long[] s = gc.shape("init_image");
            b.initImage(gc.floats("init_image"), (int) s[1], (int) s[2]).strength(kw.get("strength").asDouble());
        } else {
            b.size(kw.get("width").asInt(), kw.get("height").asInt());
        }
        return b;
    }

    private static void sameImages(GenerationResult expected, GenerationResult actual) {
        assertEquals(expected.images().size(), actual.images().size());
        for (int i = 0; i < expected.images().size(); i++) {
            assertArrayEquals(expected.images().get(i).latents(), actual.images().get(i).latents(), "latents of image " + i);
            assertArrayEquals(expected.images().get(i).pixels(), actual.images().get(i).pixels(), "pixels of image " + i);
        }
    }

    private static void goldenCaseStagedAsResident(String id, int batchCount) {
        try (GoldenCase gc = GoldenCase.open(id)) {
            GenerationRequest r = request(gc).batchCount(batchCount).build();
            GenerationResult s = staged.generate(r, GenerationListener.NONE);
            sameImages(resident.generate(r, GenerationListener.NONE), s);
            GoldenCase.assertClose(id + " final_latents", s.image().latents(), gc.floats("final_latents"),
                    gc.rel("final_latents"));
            GoldenCase.assertClose(id + " image", s.image().pixels(), gc.floats("image"), gc.rel("image"));
            assertFalse(staged.textEncoderSlot().isLoaded() || staged.unetSlot().isLoaded()
                    || staged.vaeDecoderSlot().isLoaded() || staged.vaeEncoderSlot().isLoaded(),
                    "a component stayed loaded after the generation");
        }
    }

    @Test
    void txt2imgFromTheSeedIsTheSame() {
        goldenCaseStagedAsResident("pipeline_sd15-tiny_euler_a_seed7_128x192", 1);
    }

    @Test
    void img2imgIsTheSame() {
        goldenCaseStagedAsResident("img2img_sd15-tiny_default", 1);
    }

    @Test
    void stagesListenedToInOrder() {
        List<GenerationListener.Stage> heard = new ArrayList<>();
        staged.generate(GenerationRequest.builder().prompt("x").steps(1).size(64, 64).seed(1).build(),
                new GenerationListener() {
                    @Override
                    public boolean onStep(int image, int step, int total, double timestep) {
                        heard.add(null);
                        return true;
                    }

                    @Override
                    public void stageStarted(Stage stage) {
                        if (stage == Stage.UNET) {
                            assertFalse(staged.textEncoderSlot().isLoaded(), "the text encoder outlived its stage");
                        }
                        heard.add(stage);
                    }

                    @Override
                    public void stageFinished(Stage stage) {
                        heard.add(stage);
                    }
                });
        GenerationListener.Stage te = GenerationListener.Stage.TEXT_ENCODER;
        GenerationListener.Stage unet = GenerationListener.Stage.UNET;
        GenerationListener.Stage vae = GenerationListener.Stage.VAE_DECODE;
        assertEquals(java.util.Arrays.asList(te, te, unet, null, unet, vae, vae), heard);
    }

    @Test
    void concurrentStagedGenerationsAndBatchesAreTheSame() throws Exception {
        GenerationRequest a = GenerationRequest.builder().prompt("a red circle").steps(3).size(64, 64).seed(1)
                .sampler("euler_a").build();
        GenerationRequest b = GenerationRequest.builder().prompt("a blue square").steps(2).size(64, 64).seed(2)
                .batchCount(2).build();
        GenerationResult ra = resident.generate(a, GenerationListener.NONE);
        GenerationResult rb = resident.generate(b, GenerationListener.NONE);
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            Future<GenerationResult> fa = pool.submit(() -> staged.generate(a, GenerationListener.NONE));
            Future<GenerationResult> fb = pool.submit(() -> staged.generate(b, GenerationListener.NONE));
            sameImages(ra, fa.get());
            sameImages(rb, fb.get());
        } finally {
            pool.shutdown();
        }
        assertFalse(staged.unetSlot().isLoaded());
    }

    @Test
    void stagedComponentsAreNotOfferedOutsideAGeneration() {
        MarbleException e = assertThrows(MarbleException.class, staged::unet);
        assertTrue(e.getMessage().contains("loaded in stages"), e.getMessage());
        assertThrows(MarbleException.class, staged::vae);
        assertThrows(MarbleException.class, staged::textEncoder);
        assertEquals(resident.sampleSize(), staged.sampleSize());
    }
}
