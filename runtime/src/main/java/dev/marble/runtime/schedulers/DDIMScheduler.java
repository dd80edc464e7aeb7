package dev.marble.runtime.schedulers;

import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;

/**
 * diffusers {@code DDIMScheduler} (arXiv 2010.02502): deterministic for eta = 0; eta > 0 adds
 * eta-scaled posterior noise drawn from the generator at every step.
 */
final class DDIMScheduler extends BaseScheduler {
    static final String NAME = "DDIMScheduler";

    private final Prediction prediction;
    private final boolean clipSample;
    private final float clipSampleRange;
    private final float finalAlphaCumprod;
    private final int stride;
    private final float eta;

    DDIMScheduler(SchedulerConfig cfg, int steps, float eta, Arena arena) {
        this(cfg, steps, eta, arena, BetaSchedule.from(cfg, BetaSchedule.Defaults.DIFFUSERS, BetaSchedule.ZeroSnr.RESCALE, NAME));
    }

    private DDIMScheduler(SchedulerConfig cfg, int steps, float eta, Arena arena, BetaSchedule schedule) {
        super(NAME, arena, schedule, steps, schedule.numTrainTimesteps());
        if (!(eta >= 0)) {
            throw cfg.unsupported("eta", eta, NAME);
        }
        rejectThresholding(cfg, NAME);
        this.eta = eta;
        prediction = Prediction.parse(cfg, NAME, Prediction.EPSILON, Prediction.SAMPLE, Prediction.V_PREDICTION);
        clipSample = cfg.getBoolean("clip_sample", true);
        clipSampleRange = (float) cfg.getDouble("clip_sample_range", 1.0);
        finalAlphaCumprod = cfg.getBoolean("set_alpha_to_one", true) ? 1f : schedule.alphasCumprod()[0];
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
        float aPrev = alphaProd(prevT, finalAlphaCumprod);
        float bT = 1f - aT;
        float sqrtA = RefMath.sqrt(aT);
        float sqrtB = RefMath.sqrt(bT);

        // 1. predicted x0 and epsilon (formula (12) of the DDIM paper)
        float[] x0 = new float[n];
        float[] eps = new float[n];
        for (int i = 0; i < n; i++) {
            switch (prediction) {
                case EPSILON -> {
                    x0[i] = (x[i] - sqrtB * out[i]) / sqrtA;
                    eps[i] = out[i];
                }
                case SAMPLE -> {
                    x0[i] = out[i];
                    eps[i] = (x[i] - sqrtA * x0[i]) / sqrtB;
                }
                case V_PREDICTION -> {
                    x0[i] = sqrtA * x[i] - sqrtB * out[i];
                    eps[i] = sqrtA * out[i] + sqrtB * x[i];
                }
            }
        }
        if (clipSample) {
            clamp(x0, clipSampleRange);
        }

        // 2. sigma_t = eta * sqrt(variance), formula (16)
        float bPrev = 1f - aPrev;
        float variance = (bPrev / bT) * (1f - aT / aPrev);
        float stdDev = eta * RefMath.sqrt(variance);

        // 3. direction pointing to x_t, and x_{t-1}
        float dirCoeff = RefMath.sqrt(1f - aPrev - stdDev * stdDev);
        float sqrtAPrev = RefMath.sqrt(aPrev);
        float[] prev = new float[n];
        for (int i = 0; i < n; i++) {
            prev[i] = sqrtAPrev * x0[i] + dirCoeff * eps[i];
        }
        if (eta > 0) {
            float[] z = noise(generator, modelOutput);
            for (int i = 0; i < n; i++) {
                prev[i] = prev[i] + stdDev * z[i];
            }
        }
        return result(prev, sample);
    }

    @Override
    public Tensor addNoise(Tensor original, Tensor noise, int stepIndex) {
        checkIndex(stepIndex);
        return addNoiseAlphas(original, noise, discreteTimestep(stepIndex));
    }
}
