package dev.marble.runtime.unet;

/**
 * diffusers {@code Timesteps} / {@code get_timestep_embedding}: the sinusoidal embedding of (possibly
 * fractional) timesteps, computed in float32 step by step as torch does it so that the rounding matches:
 * exponent = −ln(10000)·i / (half − shift), freq = exp(exponent), arg = t·freq, [sin | cos] (or
 * [cos | sin] with flip_sin_to_cos), zero-padded when the dimension is odd.
 */
final class Timesteps {
    private static final double MAX_PERIOD = 10000;

    private final int dim;
    private final boolean flipSinToCos;
    private final float downscaleFreqShift;

    Timesteps(int dim, boolean flipSinToCos, float downscaleFreqShift) {
        this.dim = dim;
        this.flipSinToCos = flipSinToCos;
        this.downscaleFreqShift = downscaleFreqShift;
    }

    /** Row-major [timesteps.length, dim]. */
    float[] embed(float[] timesteps) {
        int half = dim / 2;
        float[] freq = new float[half];
        float logPeriod = (float) -Math.log(MAX_PERIOD); // a Python float, cast to float32 by the tensor op
        float denom = half - downscaleFreqShift;
        for (int i = 0; i < half; i++) {
            float exponent = logPeriod * i / denom; // two float32 ops, as torch: (c · arange) / d
            freq[i] = (float) Math.exp(exponent);
        }
        float[] out = new float[timesteps.length * dim];
        for (int b = 0; b < timesteps.length; b++) {
            int row = b * dim;
            int sinAt = flipSinToCos ? row + half : row;
            int cosAt = flipSinToCos ? row : row + half;
            for (int i = 0; i < half; i++) {
                float arg = timesteps[b] * freq[i];
                out[sinAt + i] = (float) Math.sin(arg);
                out[cosAt + i] = (float) Math.cos(arg);
            }
        }
        return out;
    }
}
