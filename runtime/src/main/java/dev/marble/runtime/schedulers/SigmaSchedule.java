package dev.marble.runtime.schedulers;

/**
 * The timesteps and sigmas of diffusers' k-diffusion-style schedulers (Euler, Euler ancestral, LMS):
 * float32 timesteps by {@code timestep_spacing}, sigmas interpolated (np.interp, float64) in the
 * float32 training sigma table, optionally replaced by a Karras ramp whose timesteps are mapped back
 * through log-sigma, then stored as float32 with a final 0.
 *
 * @param timesteps [N] float32
 * @param sigmas    [N + 1] float32, the last one 0
 */
record SigmaSchedule(float[] timesteps, float[] sigmas) {

    /**
     * @param karrasMin {@code sigma_min} override for the Karras ramp, or null for the interpolated
     *                  sigma of the last timestep
     * @param karrasMax likewise for {@code sigma_max}
     */
    static SigmaSchedule of(BetaSchedule schedule, BaseScheduler.Spacing spacing, int steps, int stepsOffset,
            boolean karras, Double karrasMin, Double karrasMax) {
        int t = schedule.numTrainTimesteps();
        double[] ts = spacing.timesteps(t, steps, stepsOffset, false);
        float[] train = RefMath.trainSigmas(schedule.alphasCumprod());
        double[] sig = new double[steps];
        float[] tsF = new float[steps];
        for (int i = 0; i < steps; i++) {
            tsF[i] = (float) ts[i];
            sig[i] = RefMath.interpOnIndexGrid(tsF[i], train);
        }
        if (karras) {
            double min = karrasMin != null ? karrasMin : sig[steps - 1];
            double max = karrasMax != null ? karrasMax : sig[0];
            sig = RefMath.karras(min, max, steps);
            float[] logSigmas = RefMath.logF32(train);
            for (int i = 0; i < steps; i++) {
                tsF[i] = (float) RefMath.sigmaToT(sig[i], logSigmas);
            }
        }
        float[] sigmas = new float[steps + 1];
        for (int i = 0; i < steps; i++) {
            sigmas[i] = (float) sig[i];
        }
        return new SigmaSchedule(tsF, sigmas);
    }
}
