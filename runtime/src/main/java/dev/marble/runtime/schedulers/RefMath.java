package dev.marble.runtime.schedulers;

/**
 * The few numpy and torch routines the diffusers schedulers build their tables with, reproduced
 * operation by operation (including their float32 / float64 mix) so that timesteps and sigmas come
 * out as diffusers 0.27 computes them with torch 1.13 and numpy 1.24.
 */
final class RefMath {
    private RefMath() {}

    /**
     * {@code torch.linspace(start, end, n, dtype=float32)} on CPU (AVX2 build): step = (end - start)
     * / (n - 1) in float; blocks of 8 start at {@code start + step*i} before the halfway point and at
     * {@code end - step*(n - 1 - i)} after it, and each lane adds {@code j*step}. The compiler fuses
     * these multiply-adds, hence {@link Math#fma}.
     */
    static float[] torchLinspaceF32(double start, double end, int n) {
        float[] out = new float[n];
        if (n == 1) {
            out[0] = (float) start;
            return out;
        }
        float s = (float) start;
        float e = (float) end;
        float step = (e - s) / (float) (n - 1);
        int halfway = n / 2;
        for (int i0 = 0; i0 < n; i0 += 8) {
            float base = i0 < halfway ? Math.fma(step, (float) i0, s) : Math.fma(-step, (float) (n - i0 - 1), e);
            for (int j = 0; j < 8 && i0 + j < n; j++) {
                out[i0 + j] = Math.fma((float) j, step, base);
            }
        }
        return out;
    }

    /** {@code np.linspace(start, stop, num)} (endpoint included) in float64: i * step + start, last = stop. */
    static double[] linspace(double start, double stop, int num) {
        double[] y = new double[num];
        if (num == 1) {
            y[0] = start;
            return y;
        }
        double step = (stop - start) / (num - 1);
        for (int i = 0; i < num; i++) {
            y[i] = i * step + start;
        }
        y[num - 1] = stop;
        return y;
    }

    /**
     * {@code np.arange(start, stop, step)} for floats: length ceil((stop - start) / step); numpy
     * stores start and start + step, then fills element i with start + i * (second - first).
     */
    static double[] arange(double start, double stop, double step) {
        int len = (int) Math.max(0, Math.ceil((stop - start) / step));
        double[] y = new double[len];
        if (len == 0) {
            return y;
        }
        y[0] = start;
        if (len > 1) {
            y[1] = start + step;
            double delta = y[1] - y[0];
            for (int i = 2; i < len; i++) {
                y[i] = start + i * delta;
            }
        }
        return y;
    }

    /**
     * {@code np.interp(x, np.arange(len(fp)), fp)} in float64: exact table values on the integer
     * grid, else slope * (x - j) + fp[j].
     */
    static double interpOnIndexGrid(double x, float[] fp) {
        int last = fp.length - 1;
        if (x <= 0) {
            return fp[0];
        }
        if (x >= last) {
            return fp[last];
        }
        int j = (int) Math.floor(x);
        if (j == x) {
            return fp[j];
        }
        double slope = ((double) fp[j + 1] - fp[j]) / 1.0;
        return slope * (x - j) + fp[j];
    }

    /** diffusers' {@code _convert_to_karras}: rho = 7 ramp from sigmaMax down to sigmaMin, in float64. */
    static double[] karras(double sigmaMin, double sigmaMax, int n) {
        double rho = 7.0;
        double[] ramp = linspace(0, 1, n);
        double minInvRho = StrictMath.pow(sigmaMin, 1 / rho);
        double maxInvRho = StrictMath.pow(sigmaMax, 1 / rho);
        double[] out = new double[n];
        for (int i = 0; i < n; i++) {
            out[i] = StrictMath.pow(maxInvRho + ramp[i] * (minInvRho - maxInvRho), rho);
        }
        return out;
    }

    /**
     * diffusers' {@code _sigma_to_t}: the fractional training timestep whose log-sigma matches, by
     * linear interpolation in the float32 table {@code logSigmas}. numpy 1.24 promotes the float64
     * scalar log(sigma) to float32 against that table, so the distances and the weight are float32;
     * only the final blend of the two indices is float64.
     */
    static double sigmaToT(double sigma, float[] logSigmas) {
        float logSigma = (float) Math.log(Math.max(sigma, 1e-10));
        // cumsum(dists >= 0).argmax(): the last index whose log-sigma is <= log(sigma), else 0.
        int low = 0;
        for (int i = 0; i < logSigmas.length; i++) {
            if (logSigma - logSigmas[i] >= 0) {
                low = i;
            }
        }
        low = Math.min(low, logSigmas.length - 2);
        int high = low + 1;
        float lo = logSigmas[low];
        float hi = logSigmas[high];
        float w = (lo - logSigma) / (lo - hi);
        w = Math.min(Math.max(w, 0f), 1f);
        return (double) (1f - w) * low + (double) w * high;
    }

    /** The float32 training sigmas, torch {@code ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5}. */
    static float[] trainSigmas(float[] alphasCumprod) {
        float[] s = new float[alphasCumprod.length];
        for (int i = 0; i < s.length; i++) {
            s[i] = sqrt((1f - alphasCumprod[i]) / alphasCumprod[i]);
        }
        return s;
    }

    /** numpy float32 {@code np.log} of a table. */
    static float[] logF32(float[] x) {
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = (float) Math.log(x[i]);
        }
        return out;
    }

    /** Correctly rounded float sqrt (torch's {@code x ** 0.5} on a float32 tensor). */
    static float sqrt(float x) {
        return (float) Math.sqrt(x);
    }

    /** float32 log, as torch's CPU {@code log} on a 0-dim tensor (within an ulp). */
    static float log(float x) {
        return (float) Math.log(x);
    }

    /** float32 exp, as torch's CPU {@code exp} on a 0-dim tensor (within an ulp). */
    static float exp(float x) {
        return (float) Math.exp(x);
    }
}
