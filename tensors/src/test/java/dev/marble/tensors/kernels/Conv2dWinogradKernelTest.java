package dev.marble.tensors.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link Conv2dWinograd} against the direct scalar twin {@link Conv2dScalar}, the direct vector path
 * {@link Conv2dSimd} and a double-precision reference, on random shapes: odd and tiny images
 * (ragged 4×4 tiles), channel counts off the vector width and the 32-channel slab grain, every
 * padding 0..2 per side, dense and quantized weights.
 */
class Conv2dWinogradKernelTest {
    private static final DType[] DTYPES = {DType.F32, DType.F16, DType.BF16};
    private static final int[] SIZES = {1, 2, 3, 5, 7, 13, 31};
    private static final int[] CHANNELS = {1, 3, 9, 17, 32, 33, 40, 70};

    private static float[] random(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = rnd.nextFloat() * 2 - 1;
        }
        return v;
    }

    private static Tensor weight(Arena arena, DType dt, float[] v, int oc, int ic) {
        Tensor t = Tensor.allocate(arena, dt, oc, ic, 3, 3);
        for (int i = 0; i < v.length; i++) {
            t.setFloat(v[i], i / (ic * 9), i / 9 % ic, i / 3 % 3, i % 3);
        }
        return t;
    }

    /**
     * Error bounds, relative to max|ref| of a case, from the double reference. Measured at 256 bits over
     * the cases below (dense and quantized, K = 9·IC from 9 to 1800): Winograd 3e-7 .. 3.7e-6, at
     * most 3.1e-7·√K (the worst at K = 9, where the direct sum barely rounds); 1.6 .. 13.7 times the
     * larger of the direct vector and scalar errors (median ~6, worst again at small K). F(4×4, 3×3)
     * multiplies transformed values up to ~14² (input) and 7² (weight) times their source, so its
     * rounding is a fixed multiple of direct summation's; the bounds allow ~2× the measured worst.
     */
    private static final double SQRT_K_BOUND = 6e-7;
    private static final double DIRECT_FACTOR = 20;
    /** Below this the direct error is rounding of a single product or two (2^-24 ≈ 6e-8). */
    private static final double FLOOR = 1e-7;

    @Test
    void matchesDirectOnRandomShapes() {
        assumeTrue(Simd.ENABLED, "vector kernels disabled (marble.vector.bits=0)");
        Random rnd = new Random(2024);
        try (Arena arena = Arena.ofShared()) {
            for (int c = 0; c < 48; c++) {
                int b = 1 + rnd.nextInt(2);
                int h = SIZES[rnd.nextInt(SIZES.length)];
                int wd = SIZES[rnd.nextInt(SIZES.length)];
                int ic = CHANNELS[rnd.nextInt(CHANNELS.length)];
                int oc = CHANNELS[rnd.nextInt(CHANNELS.length)];
                int[] p = {rnd.nextInt(3), rnd.nextInt(3), rnd.nextInt(3), rnd.nextInt(3)};
                if (h + p[0] + p[2] < 3 || wd + p[1] + p[3] < 3) {
                    continue;
                }
                DType dt = DTYPES[c % DTYPES.length];
                Tensor bias = rnd.nextBoolean() ? Tensor.fromFloats(arena, random(rnd, oc), oc) : null;
                ConvWeights w = ConvWeights.pack(weight(arena, dt, random(rnd, oc * ic * 9), oc, ic), bias, arena);
                check(arena, rnd, b, h, wd, p, w, dt.toString());
            }
        }
    }

    @Test
    void matchesDirectOnMultiBandMultiSlabShapes() {
        assumeTrue(Simd.ENABLED, "vector kernels disabled (marble.vector.bits=0)");
        Random rnd = new Random(77);
        try (Arena arena = Arena.ofShared()) {
            // Several bands (2·8·8 tiles), several input-channel slabs with a short last one, a ragged
            // last output-channel block; a band spanning two images; groups of output-channel blocks.
            Object[][] cases = {
                {2, 31, 29, 150, 37, DType.F16}, {2, 6, 5, 64, 45, DType.BF16}, {1, 13, 40, 33, 130, DType.F32},
                {1, 45, 3, 200, 8, DType.F16}};
            for (Object[] s : cases) {
                int ic = (int) s[3];
                int oc = (int) s[4];
                DType dt = (DType) s[5];
                Tensor bias = Tensor.fromFloats(arena, random(rnd, oc), oc);
                ConvWeights w = ConvWeights.pack(weight(arena, dt, random(rnd, oc * ic * 9), oc, ic), bias, arena);
                check(arena, rnd, (int) s[0], (int) s[1], (int) s[2], new int[] {1, 1, 1, 1}, w, dt.toString());
            }
        }
    }

    @Test
    void quantizedWeightsMatchTheirValuesThroughTheDirectPath() {
        assumeTrue(Simd.ENABLED, "vector kernels disabled (marble.vector.bits=0)");
        Random rnd = new Random(5);
        // {batch, h, w, ic, oc}: IC a multiple of 32 (the quantization block), one or several slabs
        int[][] cases = {{1, 7, 5, 32, 3}, {2, 13, 9, 96, 33}, {1, 5, 31, 160, 17}};
        try (Arena arena = Arena.ofShared()) {
            int c = 0;
            for (int[] s : cases) {
                for (QuantFormat f : QuantFormat.all()) {
                    Tensor dense = weight(arena, DType.F32, random(rnd, s[4] * s[3] * 9), s[4], s[3]);
                    QuantizedTensor q = QuantizedTensor.quantize("w", dense, f, arena);
                    Tensor bias = c++ % 2 == 0 ? Tensor.fromFloats(arena, random(rnd, s[4]), s[4]) : null;
                    int[] p = c % 3 == 0 ? new int[] {0, 1, 2, 0} : new int[] {1, 1, 1, 1};
                    check(arena, rnd, s[0], s[1], s[2], p, ConvWeights.packQuantized(q, bias, arena), f.id());
                }
            }
        }
    }

    @Test
    void facadeTakesWinogradUnlessDisabled() {
        assumeTrue(Simd.ENABLED, "vector kernels disabled (marble.vector.bits=0)");
        Random rnd = new Random(3);
        try (Arena arena = Arena.ofShared()) {
            int ic = 64;
            int oc = 64;
            ConvWeights w = ConvWeights.pack(weight(arena, DType.F16, random(rnd, oc * ic * 9), oc, ic), null, arena);
            Tensor x = Tensor.fromFloats(arena, random(rnd, 32 * 32 * ic), 1, 32, 32, ic);
            assertEquals(Conv2d.WINOGRAD, Conv2d.usesWinograd(x, w, 1));
            assertEquals(false, Conv2d.usesWinograd(x, w, 2));
            Tensor facade = Tensor.allocate(arena, DType.F32, 1, 32, 32, oc);
            Tensor wino = Tensor.allocate(arena, DType.F32, 1, 32, 32, oc);
            Tensor direct = Tensor.allocate(arena, DType.F32, 1, 32, 32, oc);
            Conv2d.forward(x, w, 1, 1, facade);
            Conv2dWinograd.forward(x, w, 1, 1, wino);
            Conv2dSimd.forward(x, w, 1, 1, 1, direct);
            float[] want = (Conv2d.WINOGRAD ? wino : direct).toFloatArray();
            assertEquals(0, Arrays.compare(want, facade.toFloatArray()), "facade is not the expected path");
        }
    }

    /**
     * Runs Winograd, the scalar and vector direct paths and a double reference on one random input;
     * the Winograd error vs the double reference must stay within a multiple of the direct paths'
     * own and within c·√K of max|ref| (see the bounds above).
     */
    private static void check(Arena arena, Random rnd, int b, int h, int wd, int[] p, ConvWeights w, String what) {
        int ic = w.inChannels();
        int oc = w.outChannels();
        String name = what + " x[" + b + "," + h + "," + wd + "," + ic + "] oc " + oc + " pad " + Arrays.toString(p)
                + (w.hasBias() ? " bias" : "");
        int oh = Conv2d.outSize(h, 3, 1, p[0] + p[2]);
        int ow = Conv2d.outSize(wd, 3, 1, p[1] + p[3]);
        float[] xv = random(rnd, b * h * wd * ic);
        Tensor x = Tensor.fromFloats(arena, xv, b, h, wd, ic);
        Tensor wino = Tensor.allocate(arena, DType.F32, b, oh, ow, oc);
        Tensor scalar = Tensor.allocate(arena, DType.F32, b, oh, ow, oc);
        Tensor direct = Tensor.allocate(arena, DType.F32, b, oh, ow, oc);
        wino.data().fill((byte) 0x7f); // garbage: every output must be written
        Conv2dWinograd.forward(x, w, p[0], p[1], wino);
        Conv2dScalar.forward(x, w, 1, p[0], p[1], scalar);
        Conv2dSimd.forward(x, w, 1, p[0], p[1], direct);
        double[] ref = reference(xv, w, b, h, wd, oh, ow, p[0], p[1]);
        double max = 0;
        for (double r : ref) {
            max = Math.max(max, Math.abs(r));
        }
        max = Math.max(max, 1e-30);
        double errW = maxDiff(ref, wino.toFloatArray()) / max;
        double errS = maxDiff(ref, scalar.toFloatArray()) / max;
        double errD = maxDiff(ref, direct.toFloatArray()) / max;
        double bound = Math.min(SQRT_K_BOUND * Math.sqrt(9.0 * ic),
                DIRECT_FACTOR * Math.max(Math.max(errD, errS), FLOOR));
        if (!(errW <= bound)) {
            throw new AssertionError(name + ": Winograd error " + errW + " of max|ref| vs direct " + errD
                    + " / scalar " + errS + " (bound " + bound + ")");
        }
        // The direct paths themselves, as Conv2dKernelTest bounds them against each other.
        if (!(errD <= 2e-6) || !(errS <= 2e-6)) {
            throw new AssertionError(name + ": direct error " + errD + " / scalar " + errS + " of max|ref|");
        }
    }

    private static double maxDiff(double[] ref, float[] got) {
        double m = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = Math.abs(ref[i] - got[i]);
            if (!(d <= m)) {
                m = Double.isNaN(d) ? Double.POSITIVE_INFINITY : d;
            }
        }
        return m;
    }

    /** Direct convolution in double from the same float inputs and the weight's stored values. */
    private static double[] reference(float[] x, ConvWeights w, int b, int h, int wd, int oh, int ow, int pt, int pl) {
        int ic = w.inChannels();
        int oc = w.outChannels();
        double[] wf = new double[oc * 9 * ic];
        for (int o = 0; o < oc; o++) {
            for (int t = 0; t < 9; t++) {
                for (int i = 0; i < ic; i++) {
                    wf[(o * 9 + t) * ic + i] = w.get(o, i, t / 3, t % 3);
                }
            }
        }
        double[] out = new double[b * oh * ow * oc];
        for (int n = 0; n < b; n++) {
            for (int oy = 0; oy < oh; oy++) {
                for (int ox = 0; ox < ow; ox++) {
                    int ob = ((n * oh + oy) * ow + ox) * oc;
                    for (int o = 0; o < oc; o++) {
                        double acc = w.bias(o);
                        for (int t = 0; t < 9; t++) {
                            int iy = oy - pt + t / 3;
                            int ix = ox - pl + t % 3;
                            if (iy < 0 || iy >= h || ix < 0 || ix >= wd) {
                                continue;
                            }
                            int xb = ((n * h + iy) * wd + ix) * ic;
                            int wb = (o * 9 + t) * ic;
                            for (int i = 0; i < ic; i++) {
                                acc += (double) x[xb + i] * wf[wb + i];
                            }
                        }
                        out[ob + o] = acc;
                    }
                }
            }
        }
        return out;
    }
}
