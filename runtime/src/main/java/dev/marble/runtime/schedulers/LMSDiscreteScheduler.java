package dev.marble.runtime.schedulers;

import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

/**
 * diffusers {@code LMSDiscreteScheduler} (k-diffusion's {@code sample_lms}, order 4): a linear
 * multi-step method in sigma whose weights are the integrals of the Lagrange basis polynomials
 * through the last sigmas over the current step.
 *
 * <p>diffusers integrates each basis polynomial with {@code scipy.integrate.quad}; the integrand is a
 * polynomial of degree &le; 3, so here a 3-point Gauss-Legendre rule (exact up to degree 5) gives the
 * integral exactly, in double. (scipy evaluates the integrand in float32 torch scalars, which moves
 * the weights by ~1e-7 relative.)
 */
final class LMSDiscreteScheduler extends SigmaScheduler {
    static final String NAME = "LMSDiscreteScheduler";
    private static final int ORDER = 4;
    /** Gauss-Legendre nodes and weights on [-1, 1]. */
    private static final double[] GL_X = {-Math.sqrt(0.6), 0, Math.sqrt(0.6)};
    private static final double[] GL_W = {5.0 / 9, 8.0 / 9, 5.0 / 9};

    private final Prediction prediction;
    /** Derivatives of the last steps, oldest first (at most ORDER). */
    private final List<float[]> derivatives = new ArrayList<>();

    LMSDiscreteScheduler(SchedulerConfig cfg, int steps, Arena arena) {
        this(cfg, steps, arena, BetaSchedule.from(cfg, BetaSchedule.Defaults.DIFFUSERS,
                BetaSchedule.ZeroSnr.UNSUPPORTED, NAME), Spacing.parse(cfg, "linspace", NAME));
    }

    private LMSDiscreteScheduler(SchedulerConfig cfg, int steps, Arena arena, BetaSchedule schedule, Spacing spacing) {
        super(NAME, arena, schedule, steps, spacing, SigmaSchedule.of(schedule, spacing, steps,
                cfg.getInt("steps_offset", 0), cfg.getBoolean("use_karras_sigmas", false), null, null));
        prediction = Prediction.parse(cfg, NAME, Prediction.EPSILON, Prediction.V_PREDICTION, Prediction.SAMPLE);
    }

    @Override
    public Tensor step(Tensor modelOutput, int stepIndex, Tensor sample, TorchGenerator generator) {
        int n = beginStep(stepIndex, modelOutput, sample);
        float[] out = read(modelOutput);
        float[] x = read(sample);
        float sigma = sigmas[stepIndex];

        // 1. x0 and the ODE derivative (x - x0) / sigma
        float[] x0 = sigmaX0(prediction, out, x, sigma);
        float[] derivative = new float[n];
        for (int i = 0; i < n; i++) {
            derivative[i] = (x[i] - x0[i]) / sigma;
        }
        derivatives.add(derivative);
        if (derivatives.size() > ORDER) {
            derivatives.removeFirst();
        }

        // 2. the order follows the step index (not the number of stored derivatives), as in
        //    diffusers; after an img2img start the extra weights pair with nothing and drop out.
        int order = Math.min(stepIndex + 1, ORDER);
        int terms = Math.min(order, derivatives.size());
        float[] acc = new float[n];
        for (int c = 0; c < terms; c++) {
            float coeff = (float) lmsCoefficient(order, stepIndex, c);
            float[] d = derivatives.get(derivatives.size() - 1 - c);
            for (int i = 0; i < n; i++) {
                float term = coeff * d[i];
                acc[i] = c == 0 ? term : acc[i] + term;
            }
        }
        float[] prev = new float[n];
        for (int i = 0; i < n; i++) {
            prev[i] = x[i] + acc[i];
        }
        return result(prev, sample);
    }

    /**
     * diffusers' {@code get_lms_coefficient}: the integral over [sigma_t, sigma_{t+1}] of the Lagrange
     * basis polynomial that is 1 at sigma_{t - current} and 0 at the other sigma_{t - k}, k < order.
     */
    private double lmsCoefficient(int order, int t, int current) {
        double a = sigmas[t];
        double b = sigmas[t + 1];
        double half = (b - a) / 2;
        double mid = (a + b) / 2;
        double sum = 0;
        for (int q = 0; q < GL_X.length; q++) {
            double tau = mid + half * GL_X[q];
            double prod = 1.0;
            for (int k = 0; k < order; k++) {
                if (k != current) {
                    prod *= (tau - sigmas[t - k]) / ((double) sigmas[t - current] - sigmas[t - k]);
                }
            }
            sum += GL_W[q] * prod;
        }
        return sum * half;
    }
}
