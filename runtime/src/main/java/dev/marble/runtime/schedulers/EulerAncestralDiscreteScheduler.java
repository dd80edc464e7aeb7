package dev.marble.runtime.schedulers;

import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;

/**
 * diffusers {@code EulerAncestralDiscreteScheduler} (A1111's "Euler a", k-diffusion's
 * {@code sample_euler_ancestral}): an Euler step down to sigma_down, then fresh noise of size
 * sigma_up drawn from the generator, with sigma_down² + sigma_up² = sigma_next².
 */
final class EulerAncestralDiscreteScheduler extends SigmaScheduler {
    static final String NAME = "EulerAncestralDiscreteScheduler";

    private final Prediction prediction;

    EulerAncestralDiscreteScheduler(SchedulerConfig cfg, int steps, Arena arena) {
        this(cfg, steps, arena, BetaSchedule.from(cfg, BetaSchedule.Defaults.DIFFUSERS,
                BetaSchedule.ZeroSnr.RESCALE_FLOOR_LAST, NAME), Spacing.parse(cfg, "linspace", NAME));
    }

    private EulerAncestralDiscreteScheduler(SchedulerConfig cfg, int steps, Arena arena, BetaSchedule schedule,
            Spacing spacing) {
        super(NAME, arena, schedule, steps, spacing,
                SigmaSchedule.of(schedule, spacing, steps, cfg.getInt("steps_offset", 0), false, null, null));
        prediction = Prediction.parse(cfg, NAME, Prediction.EPSILON, Prediction.V_PREDICTION);
    }

    @Override
    public Tensor step(Tensor modelOutput, int stepIndex, Tensor sample, TorchGenerator generator) {
        int n = beginStep(stepIndex, modelOutput, sample);
        float[] out = read(modelOutput);
        float[] x = read(sample);
        float sigma = sigmas[stepIndex];
        float sigmaTo = sigmas[stepIndex + 1];

        // 1. x0 from the model output
        float[] x0 = sigmaX0(prediction, out, x, sigma);

        // 2. split the next noise level into a deterministic part and fresh noise
        float from2 = sigma * sigma;
        float to2 = sigmaTo * sigmaTo;
        float sigmaUp = RefMath.sqrt(to2 * (from2 - to2) / from2);
        float sigmaDown = RefMath.sqrt(to2 - sigmaUp * sigmaUp);

        // 3. Euler step to sigma_down, then the noise
        float dt = sigmaDown - sigma;
        float[] prev = new float[n];
        for (int i = 0; i < n; i++) {
            float derivative = (x[i] - x0[i]) / sigma;
            prev[i] = x[i] + derivative * dt;
        }
        float[] z = noise(generator, modelOutput);
        for (int i = 0; i < n; i++) {
            prev[i] = prev[i] + z[i] * sigmaUp;
        }
        return result(prev, sample);
    }
}
