package dev.marble.tensors.quant;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.MarbleException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.DoubleUnaryOperator;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;

/**
 * Property tests: every block of many random rows (Gaussian, uniform, zeros, constants, huge outliers,
 * denormals, mixed magnitudes) decodes within its format's documented error bound.
 */
class QuantRoundTripTest {
    private static final int K = 512; // two full q4_k super-blocks
    /** Row lengths with a partial last q4_k super-block (SD's 320 channels) and a single sub-block. */
    private static final int[] OTHER_K = {320, 32};
    private static final int ROWS_PER_KIND = 40;
    /** Float rounding in the quantizer's arithmetic, relative to the block's magnitude. */
    private static final double SLACK = 1e-6;

    /** Row generators: each yields K values. */
    private static List<Supplier<float[]>> kinds(SplittableRandom r) {
        List<Supplier<float[]>> k = new ArrayList<>();
        k.add(() -> fill(r, i -> (float) gaussian(r)));
        k.add(() -> fill(r, i -> (float) (r.nextDouble() * 2 - 1) * 1e-3f));
        k.add(() -> new float[K]);
        k.add(() -> fill(r, i -> 0.75f));
        k.add(() -> fill(r, i -> -3e4f));
        k.add(() -> fill(r, i -> r.nextInt(97) == 0 ? (float) (gaussian(r) * 1e4) : (float) gaussian(r)));
        k.add(() -> fill(r, i -> r.nextInt(50) == 0 ? 6e4f : (float) gaussian(r) * 1e-3f));
        k.add(() -> fill(r, i -> (float) gaussian(r) * 1e-40f));                       // F32 denormals
        k.add(() -> fill(r, i -> (float) gaussian(r) * 1e-6f));                        // F16-subnormal scales
        k.add(() -> fill(r, i -> (float) (gaussian(r) * Math.pow(10, r.nextInt(-6, 3)))));
        k.add(() -> fill(r, i -> i % 32 == 5 ? 1f : 0f));                              // one spike per block
        k.add(() -> fill(r, i -> (float) Math.abs(gaussian(r)) + 2f));                 // all positive, offset
        k.add(() -> fill(r, i -> (float) r.nextInt(-8, 8) * 0.25f));                    // exact ties
        k.add(() -> fill(r, i -> r.nextBoolean() ? -0f : 0f));
        return k;
    }

    private interface Gen {
        float at(int i);
    }

    private static float[] fill(SplittableRandom r, Gen g) {
        float[] x = new float[K];
        for (int i = 0; i < K; i++) {
            x[i] = g.at(i);
        }
        return x;
    }

    private static double gaussian(SplittableRandom r) {
        return Math.sqrt(-2 * Math.log(1 - r.nextDouble())) * Math.cos(2 * Math.PI * r.nextDouble());
    }

    private static double amax(float[] x, int o, int n) {
        double a = 0;
        for (int i = o; i < o + n; i++) {
            a = Math.max(a, Math.abs(x[i]));
        }
        return a;
    }

    /** Quantizes and decodes {@code rows}, then runs {@code check} on each block. */
    private static void roundTrip(QuantFormat f, List<float[]> rows, BlockCheck check) {
        roundTrip(f, rows, K, check);
    }

    /** As above, on the first {@code k} values of each row. */
    private static void roundTrip(QuantFormat f, List<float[]> rows, int k, BlockCheck check) {
        try (Arena arena = Arena.ofConfined()) {
            QuantizedTensor q = QuantizedTensor.allocate(f, new long[] {rows.size(), k}, arena);
            float[] back = new float[k];
            for (int r = 0; r < rows.size(); r++) {
                f.quantizeRow(rows.get(r), 0, q, r);
                f.dequantizeRow(q, r, back, 0);
                for (int b = 0; b < k / 32; b++) {
                    check.check(q, r, b, rows.get(r), back);
                }
            }
        }
    }

    private interface BlockCheck {
        void check(QuantizedTensor q, int row, int block, float[] x, float[] back);
    }

    private static List<float[]> rows(long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        List<float[]> out = new ArrayList<>();
        for (Supplier<float[]> kind : kinds(r)) {
            for (int i = 0; i < ROWS_PER_KIND; i++) {
                out.add(kind.get());
            }
        }
        return out;
    }

    /** Every element of a block within {@code bound(amax)} of its input. */
    private static BlockCheck perElement(DoubleUnaryOperator bound) {
        return (q, row, b, x, back) -> {
            double amax = amax(x, b * 32, 32);
            double limit = bound.applyAsDouble(amax) + SLACK * amax;
            for (int i = b * 32; i < b * 32 + 32; i++) {
                double err = Math.abs(x[i] - back[i]);
                assertTrue(err <= limit, "row " + row + " element " + i + ": |" + x[i] + " - " + back[i] + "| > " + limit);
            }
        };
    }

    @Test
    void q8_0StaysWithinItsBound() {
        roundTrip(Q8_0.INSTANCE, rows(1), perElement(amax -> amax * (1 + 0x1p-11) / 254 + 0x1p-18));
    }

    @Test
    void q4_0StaysWithinItsBound() {
        roundTrip(Q4_0.INSTANCE, rows(2), perElement(amax -> amax * (1 + 0x1p-7) / 8 + 0x1p-21));
    }

    @Test
    void q4_kStaysWithinItsBound() {
        List<float[]> rows = rows(3);
        roundTrip(Q4_K.INSTANCE, rows, Q4_K_BOUND);
        for (int k : OTHER_K) {
            roundTrip(Q4_K.INSTANCE, rows, k, Q4_K_BOUND);
        }
    }

    /** The documented q4_k bound on one sub-block, with its super-block's stored D and M. */
    private static final BlockCheck Q4_K_BOUND = (q, row, b, x, back) -> {
        MemorySegment sup = q.plane(3).data();
        long s = q.rowOffset(3, row) + 4L * (b / Q4_K.SUPER);
        double dSuper = Float.float16ToFloat(sup.get(ValueLayout.JAVA_SHORT_UNALIGNED, s));
        double mSuper = Float.float16ToFloat(sup.get(ValueLayout.JAVA_SHORT_UNALIGNED, s + 2));
        double lo = Double.MAX_VALUE;
        double hi = -Double.MAX_VALUE;
        double sse = 0;
        for (int i = b * 32; i < b * 32 + 32; i++) {
            lo = Math.min(lo, x[i]);
            hi = Math.max(hi, x[i]);
            sse += (x[i] - (double) back[i]) * (x[i] - (double) back[i]);
        }
        double amax = Math.max(Math.abs(lo), Math.abs(hi));
        double bound = (hi - lo) / 30 + dSuper / 34 + mSuper / 254 + 0x1p-20 + SLACK * amax;
        double rms = Math.sqrt(sse / 32);
        assertTrue(rms <= bound, "k " + q.k() + " row " + row + " block " + b + ": rms error " + rms + " > " + bound);
    };

    @Test
    void constantsAndZerosAreExactOrNearlySo() {
        float[] zeros = new float[K];
        float[] ones = new float[K];
        java.util.Arrays.fill(ones, 1f);
        for (QuantFormat f : QuantFormat.all()) {
            roundTrip(f, List.of(zeros), (q, row, b, x, back) -> assertEquals(0f, back[b * 32], 0f, f.id()));
            // only the F16 rounding of the scale (1/127 for q8_0) is lost
            roundTrip(f, List.of(ones), (q, row, b, x, back) -> assertEquals(1f, back[b * 32 + 7], 0x1p-11f, f.id()));
        }
    }

    /** Statistical quality on N(0, 1) rows: the figures behind the format choice, as a regression guard. */
    @Test
    void relativeErrorOnGaussianWeights() {
        SplittableRandom r = new SplittableRandom(4);
        List<float[]> rows = new ArrayList<>();
        for (int i = 0; i < 256; i++) {
            rows.add(fill(r, j -> (float) gaussian(r)));
        }
        double q8 = relativeRmse(Q8_0.INSTANCE, rows);
        double q4 = relativeRmse(Q4_0.INSTANCE, rows);
        double q4k = relativeRmse(Q4_K.INSTANCE, rows);
        System.out.printf("relative rms error on N(0,1): q8_0 %.4f, q4_0 %.4f, q4_k %.4f%n", q8, q4, q4k);
        assertTrue(q8 < 0.0060, "q8_0 " + q8);
        assertTrue(q4 < 0.090, "q4_0 " + q4);
        assertTrue(q4k < 0.075, "q4_k " + q4k);
        assertTrue(q4k < 0.88 * q4, "q4_k must beat q4_0 clearly: " + q4k + " vs " + q4);
    }

    private static double relativeRmse(QuantFormat f, List<float[]> rows) {
        double[] acc = new double[2];
        roundTrip(f, rows, (q, row, b, x, back) -> {
            for (int i = b * 32; i < b * 32 + 32; i++) {
                acc[0] += (x[i] - (double) back[i]) * (x[i] - (double) back[i]);
                acc[1] += (double) x[i] * x[i];
            }
        });
        return Math.sqrt(acc[0] / acc[1]);
    }

    @Test
    void nonFiniteAndOutOfRangeValuesAreRejected() {
        for (QuantFormat f : QuantFormat.all()) {
            float[] nan = new float[K];
            nan[3] = Float.NaN;
            float[] inf = new float[K];
            inf[40] = Float.NEGATIVE_INFINITY;
            float[] huge = new float[K];
            huge[0] = 1e30f;
            for (float[] x : List.of(nan, inf, huge)) {
                MarbleException e = assertThrows(MarbleException.class, () -> roundTrip(f, List.of(x), (q, r, b, a, c) -> { }));
                assertTrue(e.getMessage().contains("not finite") || e.getMessage().contains("overflows"), e.getMessage());
            }
        }
    }

    @Test
    void rangeLimitsAreTheDocumentedOnes() {
        float[] x = new float[K];
        x[0] = 127 * 65504f;
        roundTrip(Q8_0.INSTANCE, List.of(x), (q, r, b, a, back) -> assertEquals(a[0], back[0], 0f));
        x[0] = 8 * 65504f;
        roundTrip(Q4_0.INSTANCE, List.of(x), (q, r, b, a, back) -> assertEquals(a[0], back[0], 0f));
        x[0] = 65504f;
        roundTrip(Q4_K.INSTANCE, List.of(x), (q, r, b, a, back) -> assertEquals(a[0], back[0], a[0] / 30));
    }
}
