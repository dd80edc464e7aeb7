package dev.marble.runtime.schedulers;

import dev.marble.tensors.MarbleException;

/**
 * The training noise schedule every scheduler starts from: betas, alphas = 1 - betas and their
 * cumulative product, as the float32 torch tensors diffusers builds (linspace in float32, cumprod
 * accumulated in double as torch does on CPU and rounded per element).
 *
 * @param betas         [T] float32
 * @param alphasCumprod [T] float32
 */
record BetaSchedule(float[] betas, float[] alphasCumprod) {

    /** The class defaults a scheduler passes for keys its config may lack. */
    record Defaults(double betaStart, double betaEnd, String betaSchedule) {
        static final Defaults DIFFUSERS = new Defaults(0.0001, 0.02, "linear");
        static final Defaults LCM = new Defaults(0.00085, 0.012, "scaled_linear");
    }

    /** What a scheduler does with {@code rescale_betas_zero_snr}. */
    enum ZeroSnr {
        /** The scheduler has no such option (PNDM, LMS). */
        UNSUPPORTED,
        /** Rescale the betas (DDIM, DDPM, LCM). */
        RESCALE,
        /** Rescale, then set the last alphas_cumprod to 2^-24 so its sigma stays finite (Euler, DPM). */
        RESCALE_FLOOR_LAST
    }

    /**
     * Builds the schedule from {@code num_train_timesteps}, {@code beta_start}, {@code beta_end},
     * {@code beta_schedule} (linear, scaled_linear, squaredcos_cap_v2), {@code trained_betas} and, when
     * the scheduler supports it, {@code rescale_betas_zero_snr}.
     */
    static BetaSchedule from(SchedulerConfig cfg, Defaults d, ZeroSnr zeroSnr, String scheduler) {
        int t = cfg.getInt("num_train_timesteps", 1000);
        if (t < 2 || t > 100_000) {
            throw cfg.unsupported("num_train_timesteps", t, scheduler);
        }
        float[] betas;
        double[] trained = cfg.getDoubleArray("trained_betas");
        String kind = cfg.getString("beta_schedule", d.betaSchedule());
        if (trained != null) {
            if (trained.length != t) {
                throw new MarbleException("scheduler config: trained_betas has " + trained.length
                        + " values but num_train_timesteps is " + t);
            }
            betas = new float[t];
            for (int i = 0; i < t; i++) {
                betas[i] = (float) trained[i];
            }
        } else {
            double start = cfg.getDouble("beta_start", d.betaStart());
            double end = cfg.getDouble("beta_end", d.betaEnd());
            betas = switch (kind) {
                case "linear" -> RefMath.torchLinspaceF32(start, end, t);
                case "scaled_linear" -> {
                    float[] b = RefMath.torchLinspaceF32(Math.sqrt(start), Math.sqrt(end), t);
                    for (int i = 0; i < t; i++) {
                        b[i] = b[i] * b[i];
                    }
                    yield b;
                }
                case "squaredcos_cap_v2" -> squaredCosCapV2(t);
                default -> throw cfg.unsupported("beta_schedule", kind, scheduler);
            };
        }
        for (float b : betas) {
            if (!(b >= 0f && b < 1f)) {
                throw new MarbleException("scheduler config: beta " + b + " is outside [0, 1)");
            }
        }
        boolean rescale = cfg.getBoolean("rescale_betas_zero_snr", false);
        if (rescale && zeroSnr == ZeroSnr.UNSUPPORTED) {
            throw cfg.unsupported("rescale_betas_zero_snr", true, scheduler);
        }
        if (rescale) {
            betas = rescaleZeroTerminalSnr(betas);
        }
        float[] alphasCumprod = cumprodOneMinus(betas);
        if (rescale && zeroSnr == ZeroSnr.RESCALE_FLOOR_LAST) {
            alphasCumprod[t - 1] = 0x1.0p-24f;
        }
        return new BetaSchedule(betas, alphasCumprod);
    }

    int numTrainTimesteps() {
        return betas.length;
    }

    /** torch.cumprod(1 - betas): the running product is a double, each element is rounded to float. */
    private static float[] cumprodOneMinus(float[] betas) {
        float[] ac = new float[betas.length];
        double acc = 1.0;
        for (int i = 0; i < betas.length; i++) {
            acc *= (1f - betas[i]);
            ac[i] = (float) acc;
        }
        return ac;
    }

    /** diffusers' {@code betas_for_alpha_bar} (cosine), computed in float64 and stored as float32. */
    private static float[] squaredCosCapV2(int t) {
        float[] b = new float[t];
        for (int i = 0; i < t; i++) {
            double t1 = (double) i / t;
            double t2 = (double) (i + 1) / t;
            b[i] = (float) Math.min(1 - alphaBar(t2) / alphaBar(t1), 0.999);
        }
        return b;
    }

    private static double alphaBar(double t) {
        double c = StrictMath.cos((t + 0.008) / 1.008 * Math.PI / 2);
        return c * c;
    }

    /**
     * diffusers' {@code rescale_zero_terminal_snr} (arXiv 2305.08891, Algorithm 1) in float32: shift
     * and scale sqrt(alphas_cumprod) so the last step has zero SNR, then undo the cumprod.
     */
    private static float[] rescaleZeroTerminalSnr(float[] betas) {
        int n = betas.length;
        float[] sqrtAc = cumprodOneMinus(betas);
        for (int i = 0; i < n; i++) {
            sqrtAc[i] = RefMath.sqrt(sqrtAc[i]);
        }
        float first = sqrtAc[0];
        float last = sqrtAc[n - 1];
        float scale = first / (first - last);
        float[] alphaBar = new float[n];
        for (int i = 0; i < n; i++) {
            float v = (sqrtAc[i] - last) * scale;
            alphaBar[i] = v * v;
        }
        float[] out = new float[n];
        out[0] = 1f - alphaBar[0];
        for (int i = 1; i < n; i++) {
            out[i] = 1f - alphaBar[i] / alphaBar[i - 1];
        }
        return out;
    }
}
