package dev.marble.runtime.schedulers;

import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;

/**
 * diffusers {@code LCMScheduler} (latent consistency models, arXiv 2310.04378): each step predicts
 * the clean latent with the consistency boundary-condition scalings c_skip / c_out, then (except at
 * the last step) re-noises it to the next timestep with a fresh draw from the generator.
 */
final class LCMScheduler extends BaseScheduler {
    static final String NAME = "LCMScheduler";
    /** sigma_data of the consistency parametrisation. */
    private static final float SIGMA_DATA = 0.5f;

    private final Prediction prediction;
    private final boolean clipSample;
    private final float clipSampleRange;
    private final float finalAlphaCumprod;
    private final float timestepScaling;

    LCMScheduler(SchedulerConfig cfg, int steps, Arena arena) {
        this(cfg, steps, arena, BetaSchedule.from(cfg, BetaSchedule.Defaults.LCM, BetaSchedule.ZeroSnr.RESCALE, NAME));
    }

    private LCMScheduler(SchedulerConfig cfg, int steps, Arena arena, BetaSchedule schedule) {
        super(NAME, arena, schedule, steps, cfg.getInt("original_inference_steps", 50));
        rejectThresholding(cfg, NAME);
        prediction = Prediction.parse(cfg, NAME, Prediction.EPSILON, Prediction.SAMPLE, Prediction.V_PREDICTION);
        clipSample = cfg.getBoolean("clip_sample", false);
        clipSampleRange = (float) cfg.getDouble("clip_sample_range", 1.0);
        finalAlphaCumprod = cfg.getBoolean("set_alpha_to_one", true) ? 1f : schedule.alphasCumprod()[0];
        timestepScaling = (float) cfg.getDouble("timestep_scaling", 10.0);

        // The distillation schedule: every k-th training step, k = T // original_inference_steps,
        // then N of them picked evenly from the top (set_timesteps without custom timesteps).
        int t = schedule.numTrainTimesteps();
        int original = cfg.getInt("original_inference_steps", 50);
        if (original < 1 || original > t) {
            throw new MarbleException(NAME + ": original_inference_steps " + original + " is not in 1.." + t);
        }
        int k = t / original;
        int[] origin = new int[original];
        for (int i = 0; i < original; i++) {
            origin[i] = (original - i) * k - 1; // already reversed: descending
        }
        timesteps = new float[steps];
        double step = (double) original / steps; // np.linspace(0, len, N, endpoint=False)
        for (int i = 0; i < steps; i++) {
            timesteps[i] = origin[(int) Math.floor(i * step)];
        }
    }

    @Override
    public Tensor step(Tensor modelOutput, int stepIndex, Tensor sample, TorchGenerator generator) {
        int n = beginStep(stepIndex, modelOutput, sample);
        float[] out = read(modelOutput);
        float[] x = read(sample);
        int t = discreteTimestep(stepIndex);
        int prevT = stepIndex + 1 < timesteps.length ? discreteTimestep(stepIndex + 1) : t;
        float aT = schedule.alphasCumprod()[t];
        float aPrev = alphaProd(prevT, finalAlphaCumprod);
        float bT = 1f - aT;
        float bPrev = 1f - aPrev;

        // 1. boundary-condition scalings (get_scalings_for_boundary_condition_discrete)
        float scaled = (float) t * timestepScaling;
        float cSkip = SIGMA_DATA * SIGMA_DATA / (scaled * scaled + SIGMA_DATA * SIGMA_DATA);
        float cOut = scaled / RefMath.sqrt(scaled * scaled + SIGMA_DATA * SIGMA_DATA);

        // 2. predicted x0
        float sqrtA = RefMath.sqrt(aT);
        float sqrtB = RefMath.sqrt(bT);
        float[] x0 = new float[n];
        for (int i = 0; i < n; i++) {
            x0[i] = switch (prediction) {
                case EPSILON -> (x[i] - sqrtB * out[i]) / sqrtA;
                case SAMPLE -> out[i];
                case V_PREDICTION -> sqrtA * x[i] - sqrtB * out[i];
            };
        }
        if (clipSample) {
            clamp(x0, clipSampleRange);
        }

        // 3. denoised = c_out * x0 + c_skip * x_t, re-noised to the next timestep unless last
        float[] denoised = new float[n];
        for (int i = 0; i < n; i++) {
            denoised[i] = cOut * x0[i] + cSkip * x[i];
        }
        if (stepIndex != numInferenceSteps - 1) {
            float[] z = noise(generator, modelOutput);
            float sa = RefMath.sqrt(aPrev);
            float sb = RefMath.sqrt(bPrev);
            for (int i = 0; i < n; i++) {
                denoised[i] = sa * denoised[i] + sb * z[i];
            }
        }
        return result(denoised, sample);
    }

    @Override
    public Tensor addNoise(Tensor original, Tensor noise, int stepIndex) {
        checkIndex(stepIndex);
        return addNoiseAlphas(original, noise, discreteTimestep(stepIndex));
    }
}
