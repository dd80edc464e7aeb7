package dev.marble.runtime.schedulers;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Replays the sampling loop of every pipeline_* and img2img_* golden case without the UNet: the
 * stored uncond / text UNet outputs of each step are combined with guidance 7.5 and fed to the
 * scheduler, which must reproduce the stored model inputs, the latents after every step and the
 * final latents. The generator is seeded as the case says; the initial latents and every later
 * draw are checked against the stored ones.
 */
class PipelineReplayTest {
    private static final Pattern SEED = Pattern.compile("manual_seed\\((\\d+)\\)");
    /** The guidance scale of every case (params.call_kwargs.guidance_scale, checked below). */
    private static final float GUIDANCE = 7.5f;
    /** For stored draws of the generator (the README's suggested rel for the RNG). */
    private static final double RNG_REL = 1e-6;

    static Stream<String> cases() {
        return Stream.concat(GoldenCase.ids("pipeline_").stream(), GoldenCase.ids("img2img_").stream());
    }

    @ParameterizedTest
    @MethodSource("cases")
    void replayMatchesDiffusers(String id) {
        try (GoldenCase gc = GoldenCase.open(id); Arena arena = Arena.ofConfined()) {
            JsonNode params = gc.params();
            JsonNode kwargs = params.get("call_kwargs");
            assertEquals(GUIDANCE, kwargs.get("guidance_scale").floatValue(), 0f);
            int steps = kwargs.get("num_inference_steps").asInt();
            Matcher m = SEED.matcher(kwargs.get("generator").asText());
            assertTrue(m.find(), "seed in " + kwargs.get("generator"));
            long seed = Long.parseLong(m.group(1));
            boolean img2img = kwargs.has("strength");

            SchedulerConfig modelConfig = SchedulerConfig.of(params.get("scheduler_config"));
            Scheduler s = Schedulers.create(params.get("scheduler_id").asText(), modelConfig, steps, arena);
            assertEquals(params.get("scheduler_config").get("_class_name").asText(), s.className());

            TorchGenerator gen = new TorchGenerator(seed);
            // An independent generator replays diffusers' draw sequence, to check the stored draws.
            TorchGenerator replay = new TorchGenerator(seed);
            long[] latentShape = gc.shape("final_latents");
            int numel = (int) Arrays.stream(latentShape).reduce(1, (a, b) -> a * b);
            double rel = gc.rel("final_latents");
            double worstInput = 0;
            double worstStep = 0;
            double worstDraw = 0;
            int draw = 0;

            float[] unetTimesteps = gc.floats("debug.unet_timesteps");
            float[] modelInputs = gc.floats("debug.unet_model_input");
            float[] uncond = gc.floats("debug.noise_pred_uncond");
            float[] text = gc.floats("debug.noise_pred_text");
            float[] afterStep = gc.floats("debug.latents_after_step");

            // 1. initial latents and the first step index
            int start;
            Tensor x;
            if (img2img) {
                start = s.img2imgStartIndex(kwargs.get("strength").asDouble());
                // The VAE posterior sample, then the noise added at the start timestep.
                float[] posterior = gen.randn(numel);
                float[] noise = gen.randn(numel);
                worstDraw = Math.max(worstDraw, checkDraw(gc, draw++, posterior, replay));
                worstDraw = Math.max(worstDraw, checkDraw(gc, draw++, noise, replay));
                // Without the VAE the clean latents are unknown: take the stored noised ones,
                // recover the clean latents with the alphas of the stored first timestep, and check
                // that addNoise at the start index puts the same noise back.
                float[] noised = slice(modelInputs, 0, numel);
                float[] clean = denoiseWithStoredTimestep(s, noised, noise, (int) unetTimesteps[0]);
                Tensor renoised = s.addNoise(Tensor.fromFloats(arena, clean, latentShape),
                        Tensor.fromFloats(arena, noise, latentShape), start);
                worstInput = Math.max(worstInput, GoldenCase.assertClose(id + " add_noise",
                        renoised.toFloatArray(), noised, rel));
                x = Tensor.fromFloats(arena, noised, latentShape);
            } else {
                start = 0;
                float[] init;
                if (gc.has("latents")) {
                    init = gc.floats("latents");
                } else {
                    init = gen.randn(numel);
                    replay.randn(numel);
                    GoldenCase.assertClose(id + " initial latents from the generator", init,
                            gc.floats("initial_latents_from_generator"), RNG_REL);
                }
                float sigma = s.initNoiseSigma();
                for (int i = 0; i < init.length; i++) {
                    init[i] = init[i] * sigma;
                }
                x = Tensor.fromFloats(arena, init, latentShape);
            }
            float[] ts = s.timesteps();
            assertEquals(unetTimesteps.length, ts.length - start, id + ": number of UNet calls");

            // 2. the loop, fed with the stored UNet outputs
            for (int i = start; i < ts.length; i++) {
                int k = i - start;
                assertEquals(unetTimesteps[k], ts[i], Math.abs(unetTimesteps[k]) * 1e-6, id + " timestep " + i);
                Tensor in = s.scaleModelInput(x, i);
                worstInput = Math.max(worstInput, GoldenCase.assertClose(id + " model input " + i,
                        in.toFloatArray(), slice(modelInputs, k, numel), rel));
                float[] u = slice(uncond, k, numel);
                float[] c = slice(text, k, numel);
                float[] guided = new float[numel];
                for (int j = 0; j < numel; j++) {
                    guided[j] = u[j] + GUIDANCE * (c[j] - u[j]);
                }
                x = s.step(Tensor.fromFloats(arena, guided, latentShape), i, x, gen);
                worstStep = Math.max(worstStep, GoldenCase.assertClose(id + " latents after step " + i,
                        x.toFloatArray(), slice(afterStep, k, numel), rel));
            }

            // 3. every later draw diffusers made, in order, came from the same stream
            while (gc.has(String.format("debug.randn_%02d", draw))) {
                worstDraw = Math.max(worstDraw, checkDraw(gc, draw, replay.randn(numel), null));
                draw++;
            }
            double fin = gc.check("final_latents", x.toFloatArray());
            System.out.printf("%s (%s, %d steps from %d): final %.3g, worst step %.3g, worst model input %.3g"
                    + " (rel %.0e); %d draws, worst %.3g%n", id, s.className(), steps, start, fin, worstStep,
                    worstInput, rel, draw, worstDraw);
        }
    }

    /** Checks stored draw {@code index} against {@code values}; advances {@code replay} past it if given. */
    private static double checkDraw(GoldenCase gc, int index, float[] values, TorchGenerator replay) {
        if (replay != null) {
            replay.randn(values.length);
        }
        return GoldenCase.assertClose(gc.id() + " draw " + index, values,
                gc.floats(String.format("debug.randn_%02d", index)), RNG_REL);
    }

    /** (x - sqrt(1 - a) · noise) / sqrt(a) with a = alphas_cumprod[t]. */
    private static float[] denoiseWithStoredTimestep(Scheduler s, float[] x, float[] noise, int t) {
        float a = s.alphasCumprod()[t];
        float sa = (float) Math.sqrt(a);
        float sb = (float) Math.sqrt(1f - a);
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = (x[i] - sb * noise[i]) / sa;
        }
        return out;
    }

    private static float[] slice(float[] all, int k, int numel) {
        return Arrays.copyOfRange(all, k * numel, (k + 1) * numel);
    }
}
