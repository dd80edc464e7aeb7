package dev.marble.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Guidance against diffusers' formulas evaluated in double, on odd sizes. */
class GuidanceTest {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    @Test
    void matchesDiffusersRescaleNoiseCfg() {
        Random r = new Random(7);
        for (int n : new int[] {2, 3, 61, 1021}) {
            for (float phi : new float[] {0f, 0.3f, 0.7f, 1f}) {
                float g = 1.5f + 9 * r.nextFloat();
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment out = arena.allocate(8L * n);
                    double[] u = new double[n];
                    double[] c = new double[n];
                    for (int j = 0; j < n; j++) {
                        u[j] = (float) r.nextGaussian();
                        c[j] = (float) (0.8 * u[j] + 0.5 * r.nextGaussian() + 0.1);
                        out.setAtIndex(F, j, (float) u[j]);
                        out.setAtIndex(F, n + j, (float) c[j]);
                    }
                    MemorySegment dst = arena.allocate(4L * n);
                    Guidance.combine(out, n, g, phi, dst);
                    double[] cfg = new double[n];
                    for (int j = 0; j < n; j++) {
                        cfg[j] = u[j] + g * (c[j] - u[j]);
                    }
                    double ratio = unbiasedStd(c) / unbiasedStd(cfg);
                    for (int j = 0; j < n; j++) {
                        double want = phi == 0f ? cfg[j] : phi * cfg[j] * ratio + (1 - phi) * cfg[j];
                        assertEquals(want, dst.getAtIndex(F, j), 2e-6 * (1 + Math.abs(want)),
                                "n " + n + ", phi " + phi + ", element " + j);
                    }
                    if (phi == 1f) {
                        double[] got = new double[n];
                        for (int j = 0; j < n; j++) {
                            got[j] = dst.getAtIndex(F, j);
                        }
                        assertEquals(unbiasedStd(c), unbiasedStd(got), 1e-5 * unbiasedStd(c),
                                "full rescale gives the conditional prediction's spread");
                    }
                }
            }
        }
    }

    @Test
    void aConstantPredictionIsLeftAsGuided() {
        try (Arena arena = Arena.ofConfined()) {
            int n = 5;
            MemorySegment out = arena.allocate(8L * n);
            for (int j = 0; j < 2 * n; j++) {
                out.setAtIndex(F, j, 0.25f);
            }
            MemorySegment dst = arena.allocate(4L * n);
            Guidance.combine(out, n, 7.5f, 0.7f, dst);
            for (int j = 0; j < n; j++) {
                assertEquals(0.25f, dst.getAtIndex(F, j), "std 0/0 must not turn the prediction into NaN");
            }
        }
    }

    private static double unbiasedStd(double[] x) {
        double mean = 0;
        for (double v : x) {
            mean += v;
        }
        mean /= x.length;
        double s = 0;
        for (double v : x) {
            s += (v - mean) * (v - mean);
        }
        return Math.sqrt(s / (x.length - 1));
    }
}
