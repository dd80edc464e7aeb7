package dev.marble.runtime.schedulers;

import dev.marble.runtime.rng.TorchGenerator;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;

/**
 * diffusers {@code DPMSolverMultistepScheduler}: DPM-Solver (arXiv 2206.00927) and DPM-Solver++
 * (arXiv 2211.01095), multistep, orders 1-3, in the data ({@code dpmsolver++}) or noise
 * ({@code dpmsolver}) parametrisation, and their SDE variants that draw noise every step. A1111's
 * "DPM++ 2M" is {@code dpmsolver++} with solver_order 2 (midpoint), "DPM++ 2M Karras" adds Karras
 * sigmas, "DPM++ 2M SDE" is {@code sde-dpmsolver++}.
 *
 * <p>Each step converts the model output to x0 (or epsilon), remembers it, and combines the last
 * ones in half-log-SNR lambda = log(alpha) - log(sigma), with alpha = 1 / sqrt(sigma² + 1).
 */
final class DPMSolverMultistepScheduler extends BaseScheduler {
    static final String NAME = "DPMSolverMultistepScheduler";

    private enum Algorithm { DPMSOLVER_PP, DPMSOLVER, SDE_DPMSOLVER_PP, SDE_DPMSOLVER }

    private final Prediction prediction;
    private final Algorithm algorithm;
    private final boolean heun;
    private final int solverOrder;
    private final boolean lowerOrderFinal;
    private final boolean eulerAtFinal;
    private final boolean finalSigmaZero;
    /** [N + 1] float32. */
    private final float[] sigmas;

    /** The converted outputs of the last steps, newest last (diffusers' model_outputs). */
    private final float[][] modelOutputs;
    private int lowerOrderNums;

    DPMSolverMultistepScheduler(SchedulerConfig cfg, int steps, Arena arena) {
        this(cfg, steps, arena, BetaSchedule.from(cfg, BetaSchedule.Defaults.DIFFUSERS,
                BetaSchedule.ZeroSnr.RESCALE_FLOOR_LAST, NAME));
    }

    private DPMSolverMultistepScheduler(SchedulerConfig cfg, int steps, Arena arena, BetaSchedule schedule) {
        super(NAME, arena, schedule, steps, schedule.numTrainTimesteps());
        rejectThresholding(cfg, NAME);
        prediction = Prediction.parse(cfg, NAME, Prediction.EPSILON, Prediction.SAMPLE, Prediction.V_PREDICTION);
        String alg = cfg.getString("algorithm_type", "dpmsolver++");
        algorithm = switch (alg) {
            case "dpmsolver++", "deis" -> Algorithm.DPMSOLVER_PP; // diffusers maps deis to dpmsolver++
            case "dpmsolver" -> Algorithm.DPMSOLVER;
            case "sde-dpmsolver++" -> Algorithm.SDE_DPMSOLVER_PP;
            case "sde-dpmsolver" -> Algorithm.SDE_DPMSOLVER;
            default -> throw cfg.unsupported("algorithm_type", alg, NAME);
        };
        String solverType = cfg.getString("solver_type", "midpoint");
        heun = switch (solverType) {
            case "midpoint", "logrho", "bh1", "bh2" -> false; // diffusers maps the UniPC names to midpoint
            case "heun" -> true;
            default -> throw cfg.unsupported("solver_type", solverType, NAME);
        };
        solverOrder = cfg.getInt("solver_order", 2);
        if (solverOrder < 1 || solverOrder > 3) {
            throw cfg.unsupported("solver_order", solverOrder, NAME);
        }
        if (solverOrder == 3 && (algorithm == Algorithm.SDE_DPMSOLVER_PP || algorithm == Algorithm.SDE_DPMSOLVER)) {
            throw cfg.unsupported("solver_order", 3, NAME + " with " + alg);
        }
        lowerOrderFinal = cfg.getBoolean("lower_order_final", true);
        eulerAtFinal = cfg.getBoolean("euler_at_final", false);
        String finalSigmas = cfg.getString("final_sigmas_type", "zero");
        finalSigmaZero = switch (finalSigmas) {
            case "zero" -> true;
            case "sigma_min" -> false;
            default -> throw cfg.unsupported("final_sigmas_type", finalSigmas, NAME);
        };
        if (finalSigmaZero && (algorithm == Algorithm.DPMSOLVER || algorithm == Algorithm.SDE_DPMSOLVER)) {
            throw cfg.unsupported("final_sigmas_type", "zero", NAME + " with " + alg + " (use sigma_min)");
        }
        String varianceType = cfg.getString("variance_type", null);
        if (varianceType != null) {
            throw cfg.unsupported("variance_type", varianceType, NAME);
        }
        boolean karras = cfg.getBoolean("use_karras_sigmas", false);
        boolean lu = cfg.getBoolean("use_lu_lambdas", false);

        // set_timesteps
        int t = schedule.numTrainTimesteps();
        float[] ac = schedule.alphasCumprod();
        int lastTimestep = t - clippedIndex(ac, cfg.getDouble("lambda_min_clipped", Double.NEGATIVE_INFINITY));
        Spacing spacing = Spacing.parse(cfg, "linspace", NAME);
        int offset = cfg.getInt("steps_offset", 0);
        double[] ts = switch (spacing) {
            case LINSPACE -> {
                // np.linspace(0, last - 1, N + 1).round()[::-1][:-1]
                double[] y = RefMath.linspace(0, lastTimestep - 1, steps + 1);
                double[] d = new double[steps];
                for (int i = 0; i < steps; i++) {
                    d[i] = Math.rint(y[steps - i]);
                }
                yield d;
            }
            case LEADING -> {
                int ratio = lastTimestep / (steps + 1);
                double[] d = new double[steps];
                for (int i = 0; i < steps; i++) {
                    d[i] = (double) (steps - i) * ratio + offset;
                }
                yield d;
            }
            case TRAILING -> {
                double[] y = RefMath.arange(lastTimestep, 0, -((double) t / steps));
                for (int i = 0; i < y.length; i++) {
                    y[i] = Math.rint(y[i]) - 1;
                }
                yield y;
            }
        };
        float[] train = RefMath.trainSigmas(ac);
        float[] logSigmas = RefMath.logF32(train);
        double[] sig;
        if (karras) {
            // sigma_min / sigma_max can come along from a compatible class's config (e.g. Euler's).
            Double min = cfg.getOptionalDouble("sigma_min");
            Double max = cfg.getOptionalDouble("sigma_max");
            sig = RefMath.karras(min != null ? min : train[0], max != null ? max : train[t - 1], ts.length);
            ts = sigmasToRoundedTimesteps(sig, logSigmas);
        } else if (lu) {
            // _convert_to_lu: lambdas (here log sigma) uniform between the table's ends, rho = 1
            double[] ramp = RefMath.linspace(0, 1, ts.length);
            double lambdaMin = logSigmas[0];
            double lambdaMax = logSigmas[t - 1];
            sig = new double[ts.length];
            for (int i = 0; i < sig.length; i++) {
                sig[i] = Math.exp(lambdaMax + ramp[i] * (lambdaMin - lambdaMax));
            }
            ts = sigmasToRoundedTimesteps(sig, logSigmas);
        } else {
            sig = new double[ts.length];
            for (int i = 0; i < ts.length; i++) {
                sig[i] = RefMath.interpOnIndexGrid(ts[i], train);
            }
        }
        if (ts.length != steps) {
            throw new MarbleException(NAME + ": " + steps + " steps gave a schedule of " + ts.length);
        }
        sigmas = new float[steps + 1];
        for (int i = 0; i < steps; i++) {
            sigmas[i] = (float) sig[i];
        }
        sigmas[steps] = finalSigmaZero ? 0f : RefMath.sqrt((1f - ac[0]) / ac[0]);
        timesteps = new float[steps];
        for (int i = 0; i < steps; i++) {
            timesteps[i] = (float) ts[i];
        }
        modelOutputs = new float[solverOrder][];
    }

    /** searchsorted(flip(lambda_t), lambda_min_clipped): how many training steps are clipped off the top. */
    private static int clippedIndex(float[] ac, double lambdaMinClipped) {
        int count = 0;
        for (int i = ac.length - 1; i >= 0; i--) {
            float lambda = RefMath.log(RefMath.sqrt(ac[i])) - RefMath.log(RefMath.sqrt(1f - ac[i]));
            if (lambda < lambdaMinClipped) {
                count++;
            }
        }
        return count;
    }

    private static double[] sigmasToRoundedTimesteps(double[] sig, float[] logSigmas) {
        double[] ts = new double[sig.length];
        for (int i = 0; i < sig.length; i++) {
            ts[i] = Math.rint(RefMath.sigmaToT(sig[i], logSigmas));
        }
        return ts;
    }

    @Override
    public float[] sigmas() {
        return sigmas.clone();
    }

    @Override
    public Tensor step(Tensor modelOutput, int stepIndex, Tensor sample, TorchGenerator generator) {
        int n = beginStep(stepIndex, modelOutput, sample);
        int len = timesteps.length;
        boolean finalLower = stepIndex == len - 1
                && (eulerAtFinal || (lowerOrderFinal && len < 15) || finalSigmaZero);
        boolean secondLower = stepIndex == len - 2 && lowerOrderFinal && len < 15;

        float[] x = read(sample);
        float[] converted = convertModelOutput(read(modelOutput), x, stepIndex);
        System.arraycopy(modelOutputs, 1, modelOutputs, 0, solverOrder - 1);
        modelOutputs[solverOrder - 1] = converted;

        boolean sde = algorithm == Algorithm.SDE_DPMSOLVER_PP || algorithm == Algorithm.SDE_DPMSOLVER;
        float[] z = sde ? noise(generator, modelOutput) : null;

        float[] prev;
        if (solverOrder == 1 || lowerOrderNums < 1 || finalLower) {
            prev = firstOrder(converted, x, z, stepIndex);
        } else if (solverOrder == 2 || lowerOrderNums < 2 || secondLower) {
            prev = secondOrder(x, z, stepIndex);
        } else {
            prev = thirdOrder(x, stepIndex);
        }
        if (lowerOrderNums < solverOrder) {
            lowerOrderNums++;
        }
        return result(prev, sample);
    }

    /** alpha_t = 1 / sqrt(sigma² + 1) and sigma_t = sigma · alpha_t (float32). */
    private record AlphaSigma(float alpha, float sigma, float lambda) {
        static AlphaSigma of(float s) {
            float alpha = 1f / RefMath.sqrt(s * s + 1f);
            float sigma = s * alpha;
            // At the final sigma 0 this is +inf, and exp(-h) below becomes 0, as in torch.
            float lambda = RefMath.log(alpha) - RefMath.log(sigma);
            return new AlphaSigma(alpha, sigma, lambda);
        }
    }

    /** convert_model_output: x0 for the ++ algorithms, epsilon for the others. */
    private float[] convertModelOutput(float[] out, float[] x, int stepIndex) {
        AlphaSigma s = AlphaSigma.of(sigmas[stepIndex]);
        float[] r = new float[out.length];
        boolean dataPrediction = algorithm == Algorithm.DPMSOLVER_PP || algorithm == Algorithm.SDE_DPMSOLVER_PP;
        for (int i = 0; i < r.length; i++) {
            if (dataPrediction) {
                r[i] = switch (prediction) {
                    case EPSILON -> (x[i] - s.sigma() * out[i]) / s.alpha();
                    case SAMPLE -> out[i];
                    case V_PREDICTION -> s.alpha() * x[i] - s.sigma() * out[i];
                };
            } else {
                r[i] = switch (prediction) {
                    case EPSILON -> out[i];
                    case SAMPLE -> (x[i] - s.alpha() * out[i]) / s.sigma();
                    case V_PREDICTION -> s.alpha() * out[i] + s.sigma() * x[i];
                };
            }
        }
        return r;
    }

    /** dpm_solver_first_order_update (DDIM in lambda). */
    private float[] firstOrder(float[] m, float[] x, float[] z, int i) {
        AlphaSigma t = AlphaSigma.of(sigmas[i + 1]);
        AlphaSigma s = AlphaSigma.of(sigmas[i]);
        float h = t.lambda() - s.lambda();
        float[] out = new float[x.length];
        switch (algorithm) {
            case DPMSOLVER_PP -> {
                float cx = t.sigma() / s.sigma();
                float cm = t.alpha() * (RefMath.exp(-h) - 1f);
                for (int k = 0; k < out.length; k++) {
                    out[k] = cx * x[k] - cm * m[k];
                }
            }
            case DPMSOLVER -> {
                float cx = t.alpha() / s.alpha();
                float cm = t.sigma() * (RefMath.exp(h) - 1f);
                for (int k = 0; k < out.length; k++) {
                    out[k] = cx * x[k] - cm * m[k];
                }
            }
            case SDE_DPMSOLVER_PP -> {
                float cx = t.sigma() / s.sigma() * RefMath.exp(-h);
                float cm = t.alpha() * (1f - RefMath.exp(-2f * h));
                float cz = t.sigma() * RefMath.sqrt(1f - RefMath.exp(-2f * h));
                for (int k = 0; k < out.length; k++) {
                    out[k] = cx * x[k] + cm * m[k] + cz * z[k];
                }
            }
            case SDE_DPMSOLVER -> {
                float cx = t.alpha() / s.alpha();
                float cm = 2f * (t.sigma() * (RefMath.exp(h) - 1f));
                float cz = t.sigma() * RefMath.sqrt(RefMath.exp(2f * h) - 1f);
                for (int k = 0; k < out.length; k++) {
                    out[k] = cx * x[k] - cm * m[k] + cz * z[k];
                }
            }
        }
        return out;
    }

    /** multistep_dpm_solver_second_order_update. */
    private float[] secondOrder(float[] x, float[] z, int i) {
        AlphaSigma t = AlphaSigma.of(sigmas[i + 1]);
        AlphaSigma s0 = AlphaSigma.of(sigmas[i]);
        AlphaSigma s1 = AlphaSigma.of(sigmas[i - 1]);
        float[] m0 = modelOutputs[solverOrder - 1];
        float[] m1 = modelOutputs[solverOrder - 2];
        float h = t.lambda() - s0.lambda();
        float h0 = s0.lambda() - s1.lambda();
        float r0 = h0 / h;
        float invR0 = 1f / r0;
        float eh = RefMath.exp(-h);
        float ehPos = RefMath.exp(h);
        // Coefficients of x, D0 = m0, D1 = (m0 - m1) / r0 and the noise; the signs are in the loop.
        float[] c = switch (algorithm) {
            case DPMSOLVER_PP -> new float[] {t.sigma() / s0.sigma(), t.alpha() * (eh - 1f),
                heun ? t.alpha() * ((eh - 1f) / h + 1f) : 0.5f * (t.alpha() * (eh - 1f)), 0f};
            case DPMSOLVER -> new float[] {t.alpha() / s0.alpha(), t.sigma() * (ehPos - 1f),
                heun ? t.sigma() * ((ehPos - 1f) / h - 1f) : 0.5f * (t.sigma() * (ehPos - 1f)), 0f};
            case SDE_DPMSOLVER_PP -> {
                float e2 = RefMath.exp(-2f * h);
                yield new float[] {t.sigma() / s0.sigma() * eh, t.alpha() * (1f - e2),
                    heun ? t.alpha() * ((1f - e2) / (-2f * h) + 1f) : 0.5f * (t.alpha() * (1f - e2)),
                    t.sigma() * RefMath.sqrt(1f - e2)};
            }
            case SDE_DPMSOLVER -> new float[] {t.alpha() / s0.alpha(), 2f * (t.sigma() * (ehPos - 1f)),
                heun ? 2f * (t.sigma() * ((ehPos - 1f) / h - 1f)) : t.sigma() * (ehPos - 1f),
                t.sigma() * RefMath.sqrt(RefMath.exp(2f * h) - 1f)};
        };
        float cx = c[0];
        float c0 = c[1];
        float c1 = c[2];
        float cz = c[3];
        float[] out = new float[x.length];
        for (int k = 0; k < out.length; k++) {
            float d1 = invR0 * (m0[k] - m1[k]);
            out[k] = switch (algorithm) {
                // x_t = cx·x - c0·D0 - c1·D1 (midpoint) or + c1·D1 (heun)
                case DPMSOLVER_PP -> heun ? cx * x[k] - c0 * m0[k] + c1 * d1 : cx * x[k] - c0 * m0[k] - c1 * d1;
                case DPMSOLVER, SDE_DPMSOLVER -> {
                    float v = cx * x[k] - c0 * m0[k] - c1 * d1;
                    yield algorithm == Algorithm.SDE_DPMSOLVER ? v + cz * z[k] : v;
                }
                case SDE_DPMSOLVER_PP -> cx * x[k] + c0 * m0[k] + c1 * d1 + cz * z[k];
            };
        }
        return out;
    }

    /** multistep_dpm_solver_third_order_update (not for the SDE variants). */
    private float[] thirdOrder(float[] x, int i) {
        AlphaSigma t = AlphaSigma.of(sigmas[i + 1]);
        AlphaSigma s0 = AlphaSigma.of(sigmas[i]);
        AlphaSigma s1 = AlphaSigma.of(sigmas[i - 1]);
        AlphaSigma s2 = AlphaSigma.of(sigmas[i - 2]);
        float[] m0 = modelOutputs[2];
        float[] m1 = modelOutputs[1];
        float[] m2 = modelOutputs[0];
        float h = t.lambda() - s0.lambda();
        float h0 = s0.lambda() - s1.lambda();
        float h1 = s1.lambda() - s2.lambda();
        float r0 = h0 / h;
        float r1 = h1 / h;
        float invR0 = 1f / r0;
        float invR1 = 1f / r1;
        float w1 = r0 / (r0 + r1);
        float w2 = 1f / (r0 + r1);
        float cx;
        float c0;
        float c1;
        float c2;
        if (algorithm == Algorithm.DPMSOLVER_PP) {
            float eh = RefMath.exp(-h);
            cx = t.sigma() / s0.sigma();
            c0 = t.alpha() * (eh - 1f);
            c1 = t.alpha() * ((eh - 1f) / h + 1f);
            c2 = t.alpha() * ((eh - 1f + h) / (h * h) - 0.5f);
        } else {
            float eh = RefMath.exp(h);
            cx = t.alpha() / s0.alpha();
            c0 = t.sigma() * (eh - 1f);
            c1 = -(t.sigma() * ((eh - 1f) / h - 1f));
            c2 = t.sigma() * ((eh - 1f - h) / (h * h) - 0.5f);
        }
        float[] out = new float[x.length];
        for (int k = 0; k < out.length; k++) {
            float d10 = invR0 * (m0[k] - m1[k]);
            float d11 = invR1 * (m1[k] - m2[k]);
            float d1 = d10 + w1 * (d10 - d11);
            float d2 = w2 * (d10 - d11);
            // c1 carries the sign of the D1 term: + for dpmsolver++, - for dpmsolver.
            out[k] = cx * x[k] - c0 * m0[k] + c1 * d1 - c2 * d2;
        }
        return out;
    }

    /** alpha_t · x + sigma_t · noise at the sigma of step {@code stepIndex}. */
    @Override
    public Tensor addNoise(Tensor original, Tensor noise, int stepIndex) {
        checkIndex(stepIndex);
        checkSameShape(original, noise, "add_noise original and noise");
        AlphaSigma s = AlphaSigma.of(sigmas[stepIndex]);
        float[] x = read(original);
        float[] e = read(noise);
        for (int i = 0; i < x.length; i++) {
            x[i] = s.alpha() * x[i] + s.sigma() * e[i];
        }
        return result(x, original);
    }
}
