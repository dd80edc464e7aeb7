package dev.marble.runtime.schedulers;

import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;

/**
 * The k-diffusion-style samplers (Euler, Euler ancestral, LMS) work in sigma: the initial noise is
 * scaled by {@link #initNoiseSigma()}, the model input is x / sqrt(sigma² + 1), and img2img noise is
 * x + sigma · noise.
 */
abstract class SigmaScheduler extends BaseScheduler {
    protected final Spacing spacing;
    /** [N + 1] float32, the last one 0. */
    protected final float[] sigmas;

    SigmaScheduler(String name, Arena arena, BetaSchedule schedule, int steps, Spacing spacing, SigmaSchedule table) {
        super(name, arena, schedule, steps, schedule.numTrainTimesteps());
        this.spacing = spacing;
        this.sigmas = table.sigmas();
        this.timesteps = table.timesteps();
    }

    @Override
    public float[] sigmas() {
        return sigmas.clone();
    }

    /** The largest sigma for linspace and trailing spacing, else sqrt(max² + 1) (float32). */
    @Override
    public float initNoiseSigma() {
        float max = 0;
        for (float s : sigmas) {
            max = Math.max(max, s);
        }
        return spacing == Spacing.LEADING ? RefMath.sqrt(max * max + 1f) : max;
    }

    /** x / sqrt(sigma² + 1), the divisor rounded to float32 as torch computes it. */
    @Override
    public Tensor scaleModelInput(Tensor sample, int stepIndex) {
        checkIndex(stepIndex);
        float s = sigmas[stepIndex];
        float d = RefMath.sqrt(s * s + 1f);
        float[] x = read(sample);
        for (int i = 0; i < x.length; i++) {
            x[i] = x[i] / d;
        }
        return result(x, sample);
    }

    /** x + noise · sigma. */
    @Override
    public Tensor addNoise(Tensor original, Tensor noise, int stepIndex) {
        checkIndex(stepIndex);
        checkSameShape(original, noise, "add_noise original and noise");
        float sigma = sigmas[stepIndex];
        float[] x = read(original);
        float[] e = read(noise);
        for (int i = 0; i < x.length; i++) {
            x[i] = x[i] + e[i] * sigma;
        }
        return result(x, original);
    }
}
