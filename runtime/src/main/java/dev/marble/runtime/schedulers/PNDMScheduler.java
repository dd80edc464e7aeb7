package dev.marble.runtime.schedulers;

import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

/**
 * diffusers {@code PNDMScheduler} with {@code skip_prk_steps: true}: pseudo linear multi-step (PLMS,
 * arXiv 2202.09778), the SD-1.x default and A1111's "PLMS". The first timestep is visited twice: the
 * first visit stores the output, the second averages both (a Heun-like warm-up); then 2-, 3- and
 * 4-step Adams-Bashforth combinations of the last outputs are used.
 */
final class PNDMScheduler extends BaseScheduler {
    static final String NAME = "PNDMScheduler";

    private final Prediction prediction;
    private final float finalAlphaCumprod;
    /** T // N: how far {@code _get_prev_sample} looks back. */
    private final int stride;

    /** Past model outputs (newest last, at most 4), {@code ets} in diffusers. */
    private final List<float[]> ets = new ArrayList<>();
    /** The sample saved at the first visit of the repeated timestep. */
    private float[] curSample;
    private int counter;

    PNDMScheduler(SchedulerConfig cfg, int steps, Arena arena) {
        this(cfg, steps, arena, BetaSchedule.from(cfg, BetaSchedule.Defaults.DIFFUSERS, BetaSchedule.ZeroSnr.UNSUPPORTED, NAME));
    }

    private PNDMScheduler(SchedulerConfig cfg, int steps, Arena arena, BetaSchedule schedule) {
        super(NAME, arena, schedule, steps, schedule.numTrainTimesteps());
        if (!cfg.getBoolean("skip_prk_steps", false)) {
            // The Runge-Kutta warm-up of the original PNDM; Stable Diffusion configs skip it.
            throw cfg.unsupported("skip_prk_steps", false, NAME);
        }
        prediction = Prediction.parse(cfg, NAME, Prediction.EPSILON, Prediction.V_PREDICTION);
        finalAlphaCumprod = cfg.getBoolean("set_alpha_to_one", false) ? 1f : schedule.alphasCumprod()[0];
        int t = schedule.numTrainTimesteps();
        stride = t / steps;
        double[] desc = Spacing.parse(cfg, "leading", NAME)
                .timesteps(t, steps, cfg.getInt("steps_offset", 0), true);
        // plms_timesteps: the descending schedule with its second entry repeated.
        timesteps = new float[steps == 1 ? 1 : steps + 1];
        int k = 0;
        for (int i = 0; i < steps; i++) {
            timesteps[k++] = (float) desc[i];
            if (i == 1) {
                timesteps[k++] = (float) desc[i];
            }
        }
    }

    @Override
    public Tensor step(Tensor modelOutput, int stepIndex, Tensor sample, TorchGenerator generator) {
        int n = beginStep(stepIndex, modelOutput, sample);
        float[] out = read(modelOutput);
        float[] x = read(sample);
        int timestep = discreteTimestep(stepIndex);
        int prevTimestep = timestep - stride;
        if (counter != 1) {
            while (ets.size() > 3) {
                ets.removeFirst();
            }
            ets.add(out);
        } else {
            prevTimestep = timestep;
            timestep = timestep + stride;
        }
        float[] eps = new float[n];
        if (ets.size() == 1 && counter == 0) {
            System.arraycopy(out, 0, eps, 0, n);
            curSample = x;
        } else if (ets.size() == 1 && counter == 1) {
            float[] e1 = ets.getLast();
            for (int i = 0; i < n; i++) {
                eps[i] = (out[i] + e1[i]) / 2f;
            }
            x = curSample;
            curSample = null;
        } else if (ets.size() == 2) {
            float[] e1 = ets.get(1);
            float[] e2 = ets.get(0);
            for (int i = 0; i < n; i++) {
                eps[i] = (3f * e1[i] - e2[i]) / 2f;
            }
        } else if (ets.size() == 3) {
            float[] e1 = ets.get(2);
            float[] e2 = ets.get(1);
            float[] e3 = ets.get(0);
            for (int i = 0; i < n; i++) {
                eps[i] = (23f * e1[i] - 16f * e2[i] + 5f * e3[i]) / 12f;
            }
        } else {
            float[] e1 = ets.get(3);
            float[] e2 = ets.get(2);
            float[] e3 = ets.get(1);
            float[] e4 = ets.get(0);
            float c = (float) (1.0 / 24);
            for (int i = 0; i < n; i++) {
                eps[i] = c * (55f * e1[i] - 59f * e2[i] + 37f * e3[i] - 9f * e4[i]);
            }
        }
        float[] prev = prevSample(x, timestep, prevTimestep, eps);
        counter++;
        return result(prev, sample);
    }

    /** diffusers' {@code _get_prev_sample}: formula (9) of the PNDM paper. */
    private float[] prevSample(float[] x, int timestep, int prevTimestep, float[] eps) {
        float aT = schedule.alphasCumprod()[timestep];
        float aPrev = alphaProd(prevTimestep, finalAlphaCumprod);
        float bT = 1f - aT;
        float bPrev = 1f - aPrev;
        if (prediction == Prediction.V_PREDICTION) {
            float sa = RefMath.sqrt(aT);
            float sb = RefMath.sqrt(bT);
            for (int i = 0; i < eps.length; i++) {
                eps[i] = sa * eps[i] + sb * x[i];
            }
        }
        float sampleCoeff = RefMath.sqrt(aPrev / aT);
        float denom = aT * RefMath.sqrt(bPrev) + RefMath.sqrt(aT * bT * aPrev);
        float diff = aPrev - aT;
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = sampleCoeff * x[i] - diff * eps[i] / denom;
        }
        return out;
    }

    @Override
    public Tensor addNoise(Tensor original, Tensor noise, int stepIndex) {
        checkIndex(stepIndex);
        return addNoiseAlphas(original, noise, discreteTimestep(stepIndex));
    }
}
