package dev.marble.runtime.schedulers;

import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;

/**
 * diffusers {@code EulerDiscreteScheduler}: Algorithm 2 of Karras et al. (arXiv 2206.00364) without
 * churn, i.e. a plain Euler step of the probability-flow ODE in sigma, optionally on a Karras sigma
 * ramp ({@code use_karras_sigmas}).
 */
final class EulerDiscreteScheduler extends SigmaScheduler {
    static final String NAME = "EulerDiscreteScheduler";

    private final Prediction prediction;

    EulerDiscreteScheduler(SchedulerConfig cfg, int steps, Arena arena) {
        this(cfg, steps, arena, BetaSchedule.from(cfg, BetaSchedule.Defaults.DIFFUSERS,
                BetaSchedule.ZeroSnr.RESCALE_FLOOR_LAST, NAME), Spacing.parse(cfg, "linspace", NAME));
    }

    private EulerDiscreteScheduler(SchedulerConfig cfg, int steps, Arena arena, BetaSchedule schedule, Spacing spacing) {
        super(NAME, arena, schedule, steps, spacing, table(cfg, steps, schedule, spacing));
        prediction = Prediction.parse(cfg, NAME, Prediction.EPSILON, Prediction.V_PREDICTION, Prediction.SAMPLE);
    }

    private static SigmaSchedule table(SchedulerConfig cfg, int steps, BetaSchedule schedule, Spacing spacing) {
        String interpolation = cfg.getString("interpolation_type", "linear");
        if (!interpolation.equals("linear")) {
            throw cfg.unsupported("interpolation_type", interpolation, NAME);
        }
        String timestepType = cfg.getString("timestep_type", "discrete");
        if (!timestepType.equals("discrete")) {
            throw cfg.unsupported("timestep_type", timestepType, NAME);
        }
        return SigmaSchedule.of(schedule, spacing, steps, cfg.getInt("steps_offset", 0),
                cfg.getBoolean("use_karras_sigmas", false),
                cfg.getOptionalDouble("sigma_min"), cfg.getOptionalDouble("sigma_max"));
    }

    @Override
    public Tensor step(Tensor modelOutput, int stepIndex, Tensor sample, TorchGenerator generator) {
        int n = beginStep(stepIndex, modelOutput, sample);
        if (generator != null) {
            // diffusers 0.27 draws the churn noise at every step even with s_churn = 0, where it is
            // unused: draw it too so that later draws from the same generator stay in step.
            noise(generator, modelOutput);
        }
        float[] out = read(modelOutput);
        float[] x = read(sample);
        float sigmaHat = sigmas[stepIndex]; // sigma * (gamma + 1) with gamma = 0 (no churn)

        // 1. x0 from the model output
        float[] x0 = sigmaX0(prediction, out, x, sigmaHat);

        // 2. ODE derivative and Euler step
        float dt = sigmas[stepIndex + 1] - sigmaHat;
        float[] prev = new float[n];
        for (int i = 0; i < n; i++) {
            float derivative = (x[i] - x0[i]) / sigmaHat;
            prev[i] = x[i] + derivative * dt;
        }
        return result(prev, sample);
    }
}
