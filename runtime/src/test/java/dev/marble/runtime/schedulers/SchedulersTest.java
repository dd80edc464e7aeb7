package dev.marble.runtime.schedulers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The factory's names, config handling and the errors a caller can run into. */
class SchedulersTest {
    private static SchedulerConfig sd15() {
        return SchedulerConfig.read(GoldenCase.goldenDir().resolve("models/sd15-tiny/scheduler/scheduler_config.json"));
    }

    @Test
    void a1111NamesIdsAndClassNamesAreCaseInsensitive() {
        try (Arena arena = Arena.ofConfined()) {
            String[][] expect = {
                {"Euler a", "EulerAncestralDiscreteScheduler"}, {"euler_a", "EulerAncestralDiscreteScheduler"},
                {"EULER", "EulerDiscreteScheduler"}, {"DPM++ 2M", "DPMSolverMultistepScheduler"},
                {"dpm++ 2m karras", "DPMSolverMultistepScheduler"}, {"DDIM", "DDIMScheduler"},
                {"PLMS", "PNDMScheduler"}, {"LMS", "LMSDiscreteScheduler"}, {"LCM", "LCMScheduler"},
                {"DDPM", "DDPMScheduler"}, {"  Euler_Karras ", "EulerDiscreteScheduler"},
                {"lmsdiscretescheduler", "LMSDiscreteScheduler"}, {"default", "PNDMScheduler"},
            };
            for (String[] e : expect) {
                assertEquals(e[1], Schedulers.create(e[0], sd15(), 10, arena).className(), e[0]);
            }
            // The Karras variant differs from the plain one only in its sigmas.
            Scheduler plain = Schedulers.create("DPM++ 2M", sd15(), 10, arena);
            Scheduler karras = Schedulers.create("DPM++ 2M Karras", sd15(), 10, arena);
            assertTrue(plain.sigmas()[1] != karras.sigmas()[1]);
        }
    }

    @Test
    void unknownNamesListTheValidOnes() {
        try (Arena arena = Arena.ofConfined()) {
            MarbleException e = assertThrows(MarbleException.class,
                    () -> Schedulers.create("Heun++ 9X", sd15(), 10, arena));
            assertTrue(e.getMessage().contains("Heun++ 9X") && e.getMessage().contains("Euler a")
                    && e.getMessage().contains("DPM++ 2M Karras") && !e.getMessage().contains("\n"), e.getMessage());
            assertTrue(Schedulers.names().contains("LCM"));
        }
    }

    @Test
    void unsupportedConfigValuesAreOneLineErrors() {
        try (Arena arena = Arena.ofConfined()) {
            assertThrows(MarbleException.class,
                    () -> Schedulers.create("PNDM", sd15().with("skip_prk_steps", false), 10, arena));
            assertThrows(MarbleException.class,
                    () -> Schedulers.create("Euler", sd15().with("beta_schedule", "sigmoid"), 10, arena));
            assertThrows(MarbleException.class,
                    () -> Schedulers.create("DDIM", sd15().with("timestep_spacing", "evenly"), 10, arena));
            assertThrows(MarbleException.class,
                    () -> Schedulers.create("Euler a", sd15().with("prediction_type", "sample"), 10, arena));
            assertThrows(MarbleException.class,
                    () -> Schedulers.create("DDIM", sd15().with("thresholding", true), 10, arena));
            assertThrows(MarbleException.class,
                    () -> Schedulers.create("DDIM", sd15().with("beta_start", "small"), 10, arena));
            assertThrows(MarbleException.class, () -> Schedulers.create("Euler", sd15(), 0, arena));
            assertThrows(MarbleException.class, () -> Schedulers.create("Euler", sd15(), 1001, arena));
            // leading spacing with steps_offset 1: 1000 steps would reach timestep 1000 (diffusers: IndexError)
            MarbleException e = assertThrows(MarbleException.class, () -> Schedulers.create("PNDM", sd15(), 1000, arena));
            assertTrue(e.getMessage().contains("timestep 1000") && e.getMessage().contains("at most 999"), e.getMessage());
            assertEquals(999, Schedulers.create("PNDM", sd15(), 999, arena).numInferenceSteps());
            assertThrows(MarbleException.class, () -> Schedulers.create("LCM", sd15(), 51, arena));
            assertThrows(MarbleException.class, () -> Schedulers.create("DPMSolverMultistepScheduler",
                    sd15().with("algorithm_type", "dpmsolver"), 10, arena)); // needs final_sigmas_type sigma_min
        }
    }

    @Test
    void stepsRunInOrderAndNoiseNeedsAGenerator() {
        try (Arena arena = Arena.ofConfined()) {
            Scheduler s = Schedulers.create("Euler a", sd15(), 5, arena);
            Tensor x = Tensor.fromFloats(arena, new float[16], 1, 1, 4, 4);
            assertThrows(MarbleException.class, () -> s.step(x, 0, x, null));
            Scheduler d = Schedulers.create("DDIM", sd15(), 5, arena);
            d.step(x, 0, x, null);
            assertThrows(MarbleException.class, () -> d.step(x, 2, x, null));
            assertThrows(MarbleException.class, () -> d.step(x, 9, x, null));
            Tensor other = Tensor.fromFloats(arena, new float[8], 1, 2, 2, 2);
            assertThrows(MarbleException.class, () -> Schedulers.create("DDIM", sd15(), 5, arena).step(other, 0, x, null));
            assertSame(x, d.scaleModelInput(x, 1));
        }
    }

    @Test
    void defaultsComeFromTheSchedulerClassWhenTheConfigLacksAKey() {
        try (Arena arena = Arena.ofConfined()) {
            // Empty config: diffusers' class defaults (linear betas 1e-4..0.02; Euler spacing linspace).
            Scheduler e = Schedulers.create("Euler", SchedulerConfig.empty(), 4, arena);
            assertEquals(1e-4f, e.betas()[0], 1e-12f);
            assertEquals(0.02f, e.betas()[999], 1e-9f);
            assertArrayEquals(new float[] {999, 666, 333, 0}, e.timesteps());
            // LCM's own defaults are the SD ones.
            Scheduler l = Schedulers.create("LCM", SchedulerConfig.empty(), 4, arena);
            assertEquals(0.00085f, l.betas()[0], 1e-9f);
        }
    }

    @Test
    void readsDiffusersJsonWithNonFiniteNumbersAndRejectsBadFiles(@TempDir Path dir) throws IOException {
        Path ok = dir.resolve("scheduler_config.json");
        Files.writeString(ok, "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"lambda_min_clipped\": -Infinity,"
                + " \"beta_schedule\": \"scaled_linear\", \"beta_start\": 0.00085, \"beta_end\": 0.012,"
                + " \"timestep_spacing\": \"leading\", \"steps_offset\": 1}");
        SchedulerConfig cfg = SchedulerConfig.read(ok);
        assertEquals(Double.NEGATIVE_INFINITY, cfg.getDouble("lambda_min_clipped", 0));
        try (Arena arena = Arena.ofConfined()) {
            assertEquals("DPMSolverMultistepScheduler", Schedulers.create("default", cfg, 10, arena).className());
        }
        Path bad = dir.resolve("bad.json");
        Files.writeString(bad, "[1, 2]");
        assertThrows(MarbleException.class, () -> SchedulerConfig.read(bad));
        assertThrows(MarbleException.class, () -> SchedulerConfig.read(dir.resolve("missing.json")));
        assertThrows(MarbleException.class, () -> SchedulerConfig.of(new ObjectMapper().createArrayNode()));
    }

    @Test
    void img2imgStartFollowsDiffusersGetTimesteps() {
        try (Arena arena = Arena.ofConfined()) {
            Scheduler s = Schedulers.create("PLMS", sd15(), 10, arena);
            assertEquals(4, s.img2imgStartIndex(0.6));
            assertEquals(0, s.img2imgStartIndex(1.0));
            assertEquals(10, s.img2imgStartIndex(0.0));
            assertThrows(MarbleException.class, () -> s.img2imgStartIndex(1.5));
            Scheduler e = Schedulers.create("Euler", sd15(), 20, arena);
            assertEquals(15, e.img2imgStartIndex(0.25));
        }
    }

    @Test
    void ddimWithEtaDrawsOneNoisePerStep() {
        try (Arena arena = Arena.ofConfined()) {
            Scheduler s = Schedulers.ddim(sd15(), 4, 1f, arena);
            TorchGenerator g = new TorchGenerator(1);
            Tensor x = Tensor.fromFloats(arena, new float[32], 1, 2, 4, 4);
            for (int i = 0; i < 4; i++) {
                x = s.step(x, i, x, g);
            }
            TorchGenerator expected = new TorchGenerator(1);
            for (int i = 0; i < 4; i++) {
                expected.randn(32);
            }
            assertEquals(expected.nextInt32(), g.nextInt32());
        }
    }
}
