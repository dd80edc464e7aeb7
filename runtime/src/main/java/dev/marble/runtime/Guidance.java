package dev.marble.runtime;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Classifier-free guidance of one batch-2 UNet output [uncond; cond], each n floats:
 * guided = uncond + g · (cond − uncond). With a guidance rescale φ > 0 (diffusers'
 * {@code guidance_rescale}, Lin et al. 2023) the guided prediction is then pulled back towards the
 * spread of the conditional one, which keeps high guidance from over-exposing zero-terminal-SNR
 * models: guided ← φ · guided · std(cond) / std(guided) + (1 − φ) · guided, with torch's unbiased
 * std over the whole sample.
 */
final class Guidance {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private Guidance() {
    }

    /** Writes the guided prediction of out = [uncond; cond] (2·n floats) into dst (n floats). */
    static void combine(MemorySegment out, long n, float g, float rescale, MemorySegment dst) {
        for (long j = 0; j < n; j++) {
            float u = out.getAtIndex(F, j);
            float c = out.getAtIndex(F, n + j);
            dst.setAtIndex(F, j, u + g * (c - u));
        }
        if (rescale > 0f && n > 1) {
            double ratio = std(out, n, n) / std(dst, 0, n);
            float factor = (float) (rescale * ratio + (1.0 - rescale));
            if (Float.isFinite(factor)) {
                for (long j = 0; j < n; j++) {
                    dst.setAtIndex(F, j, dst.getAtIndex(F, j) * factor);
                }
            }
        }
    }

    /** Unbiased standard deviation of n floats from index start, two-pass in double. */
    private static double std(MemorySegment s, long start, long n) {
        double sum = 0;
        for (long j = 0; j < n; j++) {
            sum += s.getAtIndex(F, start + j);
        }
        double mean = sum / n;
        double sq = 0;
        for (long j = 0; j < n; j++) {
            double d = s.getAtIndex(F, start + j) - mean;
            sq += d * d;
        }
        return Math.sqrt(sq / (n - 1));
    }
}
