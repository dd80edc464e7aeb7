package dev.marble.runtime.schedulers;

import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;

/**
 * What every scheduler here shares: the training schedule, the arena results are allocated in, the
 * step-order check, and the element loops on float arrays. The element maths is float32, one torch
 * operation at a time in the reference's order, so results round like diffusers' tensors do.
 */
abstract class BaseScheduler implements Scheduler {
    /** How the model output is parametrised ({@code prediction_type}). */
    enum Prediction {
        EPSILON, V_PREDICTION, SAMPLE;

        static Prediction parse(SchedulerConfig cfg, String scheduler, Prediction... allowed) {
            String s = cfg.getString("prediction_type", "epsilon");
            Prediction p = switch (s) {
                case "epsilon" -> EPSILON;
                case "v_prediction" -> V_PREDICTION;
                case "sample" -> SAMPLE;
                default -> null;
            };
            if (p == null || !Arrays.asList(allowed).contains(p)) {
                throw cfg.unsupported("prediction_type", s, scheduler);
            }
            return p;
        }
    }

    /** {@code timestep_spacing}: how N inference timesteps are picked from the T training steps. */
    enum Spacing {
        LINSPACE, LEADING, TRAILING;

        static Spacing parse(SchedulerConfig cfg, String dflt, String scheduler) {
            String s = cfg.getString("timestep_spacing", dflt);
            return switch (s) {
                case "linspace" -> LINSPACE;
                case "leading" -> LEADING;
                case "trailing" -> TRAILING;
                default -> throw cfg.unsupported("timestep_spacing", s, scheduler);
            };
        }

        /**
         * The descending timesteps of diffusers' {@code set_timesteps}: linspace over [0, T - 1]
         * (rounded for the integer schedulers, float32 for the sigma ones), leading = i * (T // N) +
         * steps_offset, trailing = round(arange(T, 0, -T / N)) - 1.
         */
        double[] timesteps(int t, int n, int stepsOffset, boolean roundLinspace) {
            if (n < 1 || n > t) {
                throw new MarbleException(n + " inference steps is not in 1.." + t + " (num_train_timesteps)");
            }
            double[] out = new double[n];
            switch (this) {
                case LINSPACE -> {
                    double[] y = RefMath.linspace(0, t - 1, n);
                    for (int i = 0; i < n; i++) {
                        double v = y[n - 1 - i];
                        out[i] = roundLinspace ? Math.rint(v) : (float) v;
                    }
                }
                case LEADING -> {
                    int ratio = t / n;
                    for (int i = 0; i < n; i++) {
                        out[i] = (double) (n - 1 - i) * ratio + stepsOffset;
                    }
                    if (out[0] >= t) {
                        // diffusers would index alphas_cumprod[T] here and fail with an IndexError.
                        int most = n - 1;
                        while (most > 1 && (double) (most - 1) * (t / most) + stepsOffset >= t) {
                            most--;
                        }
                        throw new MarbleException(n + " inference steps with leading spacing and steps_offset "
                                + stepsOffset + " reach timestep " + (long) out[0] + ", beyond the " + t
                                + " training timesteps; use at most " + most + " steps");
                    }
                }
                case TRAILING -> {
                    double[] y = RefMath.arange(t, 0, -((double) t / n));
                    if (y.length != n) {
                        throw new MarbleException("trailing spacing of " + n + " steps over " + t + " gave " + y.length);
                    }
                    for (int i = 0; i < n; i++) {
                        out[i] = Math.rint(y[i]) - 1;
                    }
                }
            }
            return out;
        }
    }

    protected final String name;
    protected final Arena arena;
    protected final BetaSchedule schedule;
    protected final int numInferenceSteps;
    /** The schedule's timesteps; set once by the subclass constructor. */
    protected float[] timesteps;
    private int lastStep = -1;

    BaseScheduler(String name, Arena arena, BetaSchedule schedule, int numInferenceSteps, int maxSteps) {
        this.name = name;
        this.arena = arena;
        this.schedule = schedule;
        if (numInferenceSteps < 1 || numInferenceSteps > maxSteps) {
            throw new MarbleException(name + ": " + numInferenceSteps + " inference steps is not in 1.." + maxSteps);
        }
        this.numInferenceSteps = numInferenceSteps;
    }

    @Override
    public String className() {
        return name;
    }

    @Override
    public int numInferenceSteps() {
        return numInferenceSteps;
    }

    @Override
    public float[] timesteps() {
        return timesteps.clone();
    }

    @Override
    public float[] betas() {
        return schedule.betas().clone();
    }

    @Override
    public float[] alphasCumprod() {
        return schedule.alphasCumprod().clone();
    }

    @Override
    public float[] sigmas() {
        return new float[0];
    }

    @Override
    public float initNoiseSigma() {
        return 1.0f;
    }

    @Override
    public Tensor scaleModelInput(Tensor sample, int stepIndex) {
        checkIndex(stepIndex);
        return sample;
    }

    /** Rejects a step index outside the schedule. */
    protected final void checkIndex(int stepIndex) {
        int n = timesteps.length;
        if (stepIndex < 0 || stepIndex >= n) {
            throw new MarbleException(name + ": step index " + stepIndex + " is not in 0.." + (n - 1));
        }
    }

    /**
     * Validates a step call: a known index, following the previous one (the first step may start
     * anywhere, for img2img), and model output and sample of one shape. Returns the element count.
     */
    protected final int beginStep(int stepIndex, Tensor modelOutput, Tensor sample) {
        checkIndex(stepIndex);
        if (lastStep >= 0 && stepIndex != lastStep + 1) {
            throw new MarbleException(name + ": step " + stepIndex + " after step " + lastStep
                    + " (steps must run in order; make a new scheduler per generation)");
        }
        if (!Arrays.equals(modelOutput.shape(), sample.shape())) {
            throw new MarbleException(name + ": model output " + modelOutput + " does not match sample " + sample);
        }
        lastStep = stepIndex;
        return Math.toIntExact(sample.numel());
    }

    /** A standard normal draw shaped like {@code like}, from the generator diffusers would use. */
    protected final float[] noise(TorchGenerator generator, Tensor like) {
        if (generator == null) {
            throw new MarbleException(name + ": this sampler draws noise at every step and needs a generator");
        }
        return generator.randn(Math.toIntExact(like.numel()));
    }

    protected static float[] read(Tensor t) {
        return t.toFloatArray();
    }

    /** A new F32 tensor in the scheduler's arena, shaped like {@code like}. */
    protected final Tensor result(float[] values, Tensor like) {
        return Tensor.fromFloats(arena, values, like.shape());
    }

    protected final void checkSameShape(Tensor a, Tensor b, String what) {
        if (!Arrays.equals(a.shape(), b.shape())) {
            throw new MarbleException(name + ": " + what + " shapes differ: " + a + " vs " + b);
        }
    }

    /**
     * diffusers' DDPM-family {@code add_noise}: sqrt(alphas_cumprod[t]) * x + sqrt(1 - alphas_cumprod[t]) * noise.
     */
    protected final Tensor addNoiseAlphas(Tensor original, Tensor noise, int timestep) {
        checkSameShape(original, noise, "add_noise original and noise");
        float ac = schedule.alphasCumprod()[timestep];
        float sqrtA = RefMath.sqrt(ac);
        float sqrtOneMinusA = RefMath.sqrt(1f - ac);
        float[] x = read(original);
        float[] e = read(noise);
        for (int i = 0; i < x.length; i++) {
            x[i] = sqrtA * x[i] + sqrtOneMinusA * e[i];
        }
        return result(x, original);
    }

    /** The integer training timestep at {@code stepIndex} (for the alpha-indexed schedulers). */
    protected final int discreteTimestep(int stepIndex) {
        return (int) timesteps[stepIndex];
    }

    /** {@code alphas_cumprod[t]}, or {@code finalAlpha} for t < 0 (the step past the schedule). */
    protected final float alphaProd(int t, float finalAlpha) {
        return t >= 0 ? schedule.alphasCumprod()[t] : finalAlpha;
    }

    /** {@code clip_sample}: clamp x0 to [-range, range]. */
    protected static void clamp(float[] x, float range) {
        for (int i = 0; i < x.length; i++) {
            x[i] = Math.min(Math.max(x[i], -range), range);
        }
    }

    /** Rejects dynamic thresholding, which pixel-space models use and these latent pipelines do not. */
    protected static void rejectThresholding(SchedulerConfig cfg, String scheduler) {
        if (cfg.getBoolean("thresholding", false)) {
            throw cfg.unsupported("thresholding", true, scheduler);
        }
    }

    /** x0 for the sigma samplers: epsilon x - sigma·eps; v-prediction; or the output itself. */
    protected static float[] sigmaX0(Prediction prediction, float[] out, float[] x, float sigma) {
        float[] x0 = new float[x.length];
        switch (prediction) {
            case EPSILON -> {
                for (int i = 0; i < x.length; i++) {
                    x0[i] = x[i] - sigma * out[i];
                }
            }
            case V_PREDICTION -> {
                float s2 = sigma * sigma + 1f;
                float c = -sigma / RefMath.sqrt(s2);
                for (int i = 0; i < x.length; i++) {
                    x0[i] = out[i] * c + x[i] / s2;
                }
            }
            case SAMPLE -> System.arraycopy(out, 0, x0, 0, x.length);
        }
        return x0;
    }
}
