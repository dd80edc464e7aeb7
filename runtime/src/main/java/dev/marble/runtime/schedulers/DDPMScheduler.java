package dev.marble.runtime.schedulers;

import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;

/**
 * diffusers {@code DDPMScheduler} (arXiv 2006.11239) with a fixed variance: the posterior mean of
 * formula (7) plus noise drawn from the generator at every step whose timestep is above 0.
 */
final class DDPMScheduler extends BaseScheduler {
    static final String NAME = "DDPMScheduler";

    /** {@code variance_type}; the learned variants need a 2x-channel model output and are not supported. */
    private enum Variance { FIXED_SMALL, FIXED_SMALL_LOG, FIXED_LARGE }

    private final Prediction prediction;
    private final Variance varianceType;
    private final boolean clipSample;
    private final float clipSampleRange;
    private final int stride;

    DDPMScheduler(SchedulerConfig cfg, int steps, Arena arena) {
        this(cfg, steps, arena, BetaSchedule.from(cfg, BetaSchedule.Defaults.DIFFUSERS, BetaSchedule.ZeroSnr.RESCALE, NAME));
    }

    private DDPMScheduler(SchedulerConfig cfg, int steps, Arena arena, BetaSchedule schedule) {
        super(NAME, arena, schedule, steps, schedule.numTrainTimesteps());
        rejectThresholding(cfg, NAME);
        prediction = Prediction.parse(cfg, NAME, Prediction.EPSILON, Prediction.SAMPLE, Prediction.V_PREDICTION);
        String v = cfg.getString("variance_type", "fixed_small");
        varianceType = switch (v) {
            case "fixed_small" -> Variance.FIXED_SMALL;
            case "fixed_small_log" -> Variance.FIXED_SMALL_LOG;
            case "fixed_large" -> Variance.FIXED_LARGE;
            default -> throw cfg.unsupported("variance_type", v, NAME);
        };
        clipSample = cfg.getBoolean("clip_sample", true);
        clipSampleRange = (float) cfg.getDouble("clip_sample_range", 1.0);
        int t = schedule.numTrainTimesteps();
        stride = t / steps;
        double[] desc = Spacing.parse(cfg, "leading", NAME).timesteps(t, steps, cfg.getInt("steps_offset", 0), true);
        timesteps = new float[steps];
        for (int i = 0; i < steps; i++) {
            timesteps[i] = (float) desc[i];
        }
    }

    @Override
    public Tensor step(Tensor modelOutput, int stepIndex, Tensor sample, TorchGenerator generator) {
        int n = beginStep(stepIndex, modelOutput, sample);
        float[] out = read(modelOutput);
        float[] x = read(sample);
        int t = discreteTimestep(stepIndex);
        int prevT = t - stride;
        float aT = schedule.alphasCumprod()[t];
        float aPrev = alphaProd(prevT, 1f);
        float bT = 1f - aT;
        float bPrev = 1f - aPrev;
        float curAlpha = aT / aPrev;
        float curBeta = 1f - curAlpha;

        // 1. predicted x0, formula (15)
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

        // 2. posterior mean, formula (7)
        float x0Coeff = RefMath.sqrt(aPrev) * curBeta / bT;
        float sampleCoeff = RefMath.sqrt(curAlpha) * bPrev / bT;
        float[] prev = new float[n];
        for (int i = 0; i < n; i++) {
            prev[i] = x0Coeff * x0[i] + sampleCoeff * x[i];
        }

        // 3. posterior noise
        if (t > 0) {
            float[] z = noise(generator, modelOutput);
            float scale = noiseScale(aT, aPrev);
            for (int i = 0; i < n; i++) {
                prev[i] = prev[i] + scale * z[i];
            }
        }
        return result(prev, sample);
    }

    /** diffusers' {@code _get_variance} turned into the factor on the noise. */
    private float noiseScale(float aT, float aPrev) {
        float curBeta = 1f - aT / aPrev;
        float variance = (1f - aPrev) / (1f - aT) * curBeta;
        variance = Math.max(variance, 1e-20f);
        return switch (varianceType) {
            case FIXED_SMALL -> RefMath.sqrt(variance);
            // exp(0.5 * log(variance)): already a standard deviation, used without a further sqrt.
            case FIXED_SMALL_LOG -> RefMath.exp(0.5f * RefMath.log(variance));
            case FIXED_LARGE -> RefMath.sqrt(curBeta);
        };
    }

    @Override
    public Tensor addNoise(Tensor original, Tensor noise, int stepIndex) {
        checkIndex(stepIndex);
        return addNoiseAlphas(original, noise, discreteTimestep(stepIndex));
    }
}
