package dev.marble.runtime.schedulers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every scheduler_* golden case: betas, alphas_cumprod, and for N = 4..20 the timesteps, sigmas and
 * init_noise_sigma, built twice: from the class and full config stored in the case, and through the
 * factory from the model's scheduler_config.json with the case's short id (which must apply the same
 * overrides).
 */
class SchedulerTablesTest {
    static Stream<String> cases() {
        return GoldenCase.ids("scheduler_").stream();
    }

    @ParameterizedTest
    @MethodSource("cases")
    void tablesMatchDiffusers(String id) {
        try (GoldenCase gc = GoldenCase.open(id); Arena arena = Arena.ofConfined()) {
            String className = gc.params().get("scheduler_class").asText();
            SchedulerConfig stored = SchedulerConfig.of(gc.params().get("config"));
            String shortId = id.substring(id.lastIndexOf("sd15-tiny_") + "sd15-tiny_".length());
            SchedulerConfig model = SchedulerConfig.read(modelSchedulerConfig(gc));
            double worst = 0;
            int checked = 0;
            for (int n = 4; n <= 20; n++) {
                for (Scheduler s : List.of(Schedulers.create(className, stored, n, arena),
                        Schedulers.create(shortId, model, n, arena))) {
                    assertEquals(className, s.className(), id);
                    worst = Math.max(worst, gc.check("timesteps_" + n, s.timesteps()));
                    worst = Math.max(worst, gc.check("init_noise_sigma_" + n, new float[] {s.initNoiseSigma()}));
                    if (gc.has("sigmas_" + n)) {
                        worst = Math.max(worst, gc.check("sigmas_" + n, s.sigmas()));
                    } else {
                        assertEquals(0, s.sigmas().length, id + ": a scheduler without sigmas in diffusers");
                    }
                    worst = Math.max(worst, gc.check("betas", s.betas()));
                    worst = Math.max(worst, gc.check("alphas_cumprod", s.alphasCumprod()));
                    checked++;
                }
            }
            assertTrue(checked == 34);
            System.out.printf("%s: N=4..20, worst max|out-ref|/scale = %.3g (rel 1e-6)%n", id, worst);
        }
    }

    private static Path modelSchedulerConfig(GoldenCase gc) {
        String model = gc.entry().get("model").asText();
        Path p = GoldenCase.goldenDir().resolve("models").resolve(model).resolve("scheduler").resolve("scheduler_config.json");
        assertTrue(p.toFile().isFile(), "missing " + p);
        return p;
    }
}
