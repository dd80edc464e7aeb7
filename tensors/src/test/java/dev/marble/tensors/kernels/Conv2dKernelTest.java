package dev.marble.tensors.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Numerics;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class Conv2dKernelTest {
    private static final DType[] DTYPES = {DType.F32, DType.F16, DType.BF16};
    private static final int[] SIZES = {1, 3, 5, 7, 9, 13};
    private static final int[] CHANNELS = {1, 3, 4, 17, 32, 33, 40};

    /** A weight tensor in dtype dt from floats (rounded to dt), shape [OC, IC, KH, KW]. */
    private static Tensor weight(Arena arena, DType dt, float[] v, int oc, int ic, int kh, int kw) {
        Tensor t = Tensor.allocate(arena, dt, oc, ic, kh, kw);
        int n = 0;
        for (int o = 0; o < oc; o++) {
            for (int i = 0; i < ic; i++) {
                for (int y = 0; y < kh; y++) {
                    for (int x = 0; x < kw; x++) {
                        t.setFloat(v[n++], o, i, y, x);
                    }
                }
            }
        }
        return t;
    }

    private static float[] random(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = rnd.nextFloat() * 2 - 1;
        }
        return v;
    }

    /**
     * Runs the facade, the scalar twin, (when enabled) the direct vector kernel and (when the facade
     * takes it) the Winograd kernel; returns them in that order, null for a path not run.
     */
    private static float[][] runAll(Arena arena, Tensor x, ConvWeights w, int stride, int pt, int pl, int pb, int pr) {
        int b = x.size(0);
        int oh = Conv2d.outSize(x.size(1), w.kernelHeight(), stride, pt + pb);
        int ow = Conv2d.outSize(x.size(2), w.kernelWidth(), stride, pl + pr);
        Tensor facade = Tensor.allocate(arena, DType.F32, b, oh, ow, w.outChannels());
        Tensor scalar = Tensor.allocate(arena, DType.F32, b, oh, ow, w.outChannels());
        Conv2d.forward(x, w, stride, pt, pl, pb, pr, facade);
        Conv2dScalar.forward(x, w, stride, pt, pl, scalar);
        float[] vector = null;
        if (Simd.ENABLED) {
            Tensor v = Tensor.allocate(arena, DType.F32, b, oh, ow, w.outChannels());
            v.data().fill((byte) 0x7f); // garbage: the kernel must overwrite every output
            Conv2dSimd.forward(x, w, stride, pt, pl, v);
            vector = v.toFloatArray();
        }
        float[] winograd = null;
        if (Conv2d.usesWinograd(x, w, stride)) {
            Tensor v = Tensor.allocate(arena, DType.F32, b, oh, ow, w.outChannels());
            Conv2dWinograd.forward(x, w, pt, pl, v);
            winograd = v.toFloatArray();
        }
        return new float[][] {facade.toFloatArray(), scalar.toFloatArray(), vector, winograd};
    }

    private static void assertClose(String what, float[] ref, float[] got) {
        assertEquals(ref.length, got.length, what);
        float max = 0f;
        for (float r : ref) {
            max = Math.max(max, Math.abs(r));
        }
        float tol = 2e-6f * Math.max(1f, max);
        for (int i = 0; i < ref.length; i++) {
            float d = Math.abs(ref[i] - got[i]);
            if (!(d <= tol)) {
                throw new AssertionError(what + ": element " + i + " is " + got[i] + ", expected " + ref[i]
                        + " (|diff| " + d + " > " + tol + ")");
            }
        }
    }

    @Test
    void handComputedNeighbourhoodSums() {
        // 3×3 all-ones kernel, stride 1, pad 1 over the 3×3 grid 1..9: each output is the sum of the
        // pixel's in-image neighbourhood.
        float[] expected = {12, 21, 16, 27, 45, 33, 24, 39, 28};
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.fromFloats(arena, new float[] {1, 2, 3, 4, 5, 6, 7, 8, 9}, 1, 3, 3, 1);
            for (DType dt : DTYPES) {
                float[] ones = new float[9];
                Arrays.fill(ones, 1f);
                ConvWeights w = ConvWeights.pack(weight(arena, dt, ones, 1, 1, 3, 3), null, arena);
                for (float[] r : runAll(arena, x, w, 1, 1, 1, 1, 1)) {
                    if (r != null) {
                        assertArrayEquals(expected, r, 0f, dt.toString());
                    }
                }
            }
        }
    }

    @Test
    void handComputedStride2AsymmetricPaddingWithBias() {
        // x [1, 4, 4, 2]: channel 0 holds 1..16 row-major, channel 1 is 0.25 everywhere.
        float[] xv = new float[32];
        for (int i = 0; i < 16; i++) {
            xv[2 * i] = i + 1;
            xv[2 * i + 1] = 0.25f;
        }
        // Output 0 picks the window's top-left of channel 0, plus bias 0.5. Output 1 takes 2 × the
        // window's bottom-right of channel 0 plus the top-middle of channel 1, plus bias -1.
        float[] wv = new float[2 * 2 * 9];
        wv[0] = 1f;                 // [0, 0, 0, 0]
        wv[18 + 8] = 2f;            // [1, 0, 2, 2]
        wv[18 + 9 + 1] = 1f;        // [1, 1, 0, 1]
        // Stride 2, pad top/left 0, bottom/right 1 (the VAE encoder's downsample): OH = OW = 2 and the
        // window of output (oy, ox) starts at input (2·oy, 2·ox); row/column 4 is padding.
        // out[oy, ox, 0] = 0.5 + x0[2oy][2ox];  out[oy, ox, 1] = -1 + 2·x0[2oy+2][2ox+2] + 0.25
        float[] expected = {1.5f, 21.25f, 3.5f, -0.75f, 9.5f, -0.75f, 11.5f, -0.75f};
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.fromFloats(arena, xv, 1, 4, 4, 2);
            Tensor bias = Tensor.fromFloats(arena, new float[] {0.5f, -1f}, 2);
            for (DType dt : DTYPES) {
                ConvWeights w = ConvWeights.pack(weight(arena, dt, wv, 2, 2, 3, 3), bias, arena);
                for (float[] r : runAll(arena, x, w, 2, 0, 0, 1, 1)) {
                    if (r != null) {
                        assertArrayEquals(expected, r, 0f, dt.toString());
                    }
                }
            }
        }
    }

    @Test
    void handComputedPointwise() {
        // 1×1 conv, IC 2 → OC 3 on two pixels: out[p, o] = Σ_i W[o, i]·x[p, i] + b[o].
        try (Arena arena = Arena.ofShared()) {
            Tensor x = Tensor.fromFloats(arena, new float[] {1, 2, -3, 0.5f}, 1, 1, 2, 2);
            Tensor bias = Tensor.fromFloats(arena, new float[] {0, 10, -1}, 3);
            float[] wv = {1, 1, 2, -1, 0.5f, 4};
            float[] expected = {3, 10, 7.5f, -2.5f, 3.5f, -0.5f};
            for (DType dt : DTYPES) {
                ConvWeights w = ConvWeights.pack(weight(arena, dt, wv, 3, 2, 1, 1), bias, arena);
                for (float[] r : runAll(arena, x, w, 1, 0, 0, 0, 0)) {
                    if (r != null) {
                        assertArrayEquals(expected, r, 0f, dt.toString());
                    }
                }
            }
        }
    }

    @Test
    void vectorMatchesScalarOnRandomShapes() {
        assumeTrue(Simd.ENABLED, "vector kernels disabled (marble.vector.bits=0)");
        Random rnd = new Random(1234);
        int[][] pads = {{1, 1, 1, 1}, {0, 0, 0, 0}, {0, 0, 1, 1}, {1, 0, 0, 1}};
        try (Arena arena = Arena.ofShared()) {
            for (int c = 0; c < 80; c++) {
                int b = 1 + rnd.nextInt(2);
                int h = SIZES[rnd.nextInt(SIZES.length)];
                int wd = SIZES[rnd.nextInt(SIZES.length)];
                int ic = CHANNELS[rnd.nextInt(CHANNELS.length)];
                int oc = CHANNELS[rnd.nextInt(CHANNELS.length)];
                int k = rnd.nextInt(3) == 0 ? 1 : 3;
                int stride = 1 + rnd.nextInt(2);
                int[] p = pads[rnd.nextInt(pads.length)];
                DType dt = DTYPES[c % DTYPES.length];
                boolean withBias = rnd.nextBoolean();
                check(arena, rnd, b, h, wd, ic, oc, k, k, stride, p, dt, withBias);
            }
        }
    }

    @Test
    void vectorMatchesScalarOnMultiBandMultiSlabShapes() {
        assumeTrue(Simd.ENABLED, "vector kernels disabled (marble.vector.bits=0)");
        Random rnd = new Random(99);
        try (Arena arena = Arena.ofShared()) {
            // Several bands per image, output-channel groups, several input-channel slabs (also a short
            // last slab), row tails, and a 2×3 kernel with padding larger than needed.
            check(arena, rnd, 2, 5, 7, 150, 37, 3, 3, 1, new int[] {1, 1, 1, 1}, DType.F16, true);
            check(arena, rnd, 1, 9, 301, 8, 20, 3, 3, 1, new int[] {1, 1, 1, 1}, DType.BF16, false);
            check(arena, rnd, 1, 45, 40, 9, 20, 3, 3, 2, new int[] {0, 0, 1, 1}, DType.BF16, true);
            check(arena, rnd, 2, 5, 6, 1200, 19, 1, 1, 1, new int[] {0, 0, 0, 0}, DType.F32, true);
            check(arena, rnd, 1, 3, 2, 5, 6, 2, 3, 1, new int[] {2, 0, 1, 2}, DType.F16, true);
        }
    }

    private static void check(Arena arena, Random rnd, int b, int h, int wd, int ic, int oc, int kh, int kw, int stride,
            int[] p, DType dt, boolean withBias) {
        String what = "x[" + b + "," + h + "," + wd + "," + ic + "] w[" + oc + "," + ic + "," + kh + "," + kw + "] "
                + dt + " stride " + stride + " pad " + Arrays.toString(p) + (withBias ? " bias" : "");
        if (h + p[0] + p[2] < kh || wd + p[1] + p[3] < kw) {
            return; // no output pixel
        }
        Tensor x = Tensor.fromFloats(arena, random(rnd, b * h * wd * ic), b, h, wd, ic);
        Tensor bias = withBias ? Tensor.fromFloats(arena, random(rnd, oc), oc) : null;
        ConvWeights w = ConvWeights.pack(weight(arena, dt, random(rnd, oc * ic * kh * kw), oc, ic, kh, kw), bias, arena);
        float[][] r = runAll(arena, x, w, stride, p[0], p[1], p[2], p[3]);
        assertClose(what + " (vector)", r[1], r[2]);
        if (r[3] != null) {
            // The facade took Winograd, whose (larger) error Conv2dWinogradKernelTest bounds: here it
            // must be exactly that path's result.
            assertArrayEquals(r[3], r[0], 0f, what + " (facade = Winograd)");
        } else {
            assertClose(what + " (facade)", r[1], r[0]);
        }
    }

    @Test
    void packedWeightsReadBackExactly() {
        Random rnd = new Random(7);
        try (Arena arena = Arena.ofShared()) {
            for (DType dt : DTYPES) {
                int oc = 37;
                int ic = 70;
                float[] v = random(rnd, oc * ic * 9);
                Tensor t = weight(arena, dt, v, oc, ic, 3, 3);
                ConvWeights w = ConvWeights.pack(t, null, arena);
                assertEquals(dt, w.dtype());
                assertEquals(oc, w.outChannels());
                assertEquals(ic, w.inChannels());
                assertTrue(!w.hasBias() && w.bias(3) == 0f);
                for (int o = 0; o < oc; o++) {
                    for (int i = 0; i < ic; i++) {
                        for (int y = 0; y < 3; y++) {
                            for (int xx = 0; xx < 3; xx++) {
                                assertEquals(t.getFloat(o, i, y, xx), w.get(o, i, y, xx));
                            }
                        }
                    }
                }
                // Storage stays in the weight's dtype: F16/BF16 take 2 bytes per (padded) element.
                long padded = (long) ((oc + w.blockWidth() - 1) / w.blockWidth() * w.blockWidth()) * 96 * 9;
                assertEquals(padded * dt.byteSize(), w.byteSize());
            }
        }
    }

    @Test
    void f16DecodeIsExactForEveryHalf() {
        assumeTrue(Simd.ENABLED, "vector kernels disabled (marble.vector.bits=0)");
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment all = arena.allocate(65536 * 2L);
            for (int i = 0; i < 65536; i++) {
                all.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, (short) i);
            }
            float[] got = new float[65536];
            new Conv2dFormat.F16().decode(all, 0, 65536, got, 0);
            for (int i = 0; i < 65536; i++) {
                float ref = Float.float16ToFloat((short) i);
                int want = Float.floatToRawIntBits(ref);
                int bits = Float.floatToRawIntBits(got[i]);
                boolean sameNaN = Float.isNaN(ref) && Float.isNaN(got[i]) && (bits ^ want) >= 0; // same sign
                if (bits != want && !sameNaN) {
                    throw new AssertionError("half 0x" + Integer.toHexString(i) + " decodes to 0x"
                            + Integer.toHexString(Float.floatToRawIntBits(got[i])) + ", expected 0x"
                            + Integer.toHexString(want));
                }
            }
            new Conv2dFormat.BF16().decode(all, 0, 65536, got, 0);
            for (int i = 0; i < 65536; i++) {
                assertEquals(Float.floatToRawIntBits(Numerics.bf16ToFloat((short) i)), Float.floatToRawIntBits(got[i]));
            }
            // Odd element offset: decode reads unaligned storage.
            float[] f32 = new float[67];
            float[] scalar = new float[67];
            new Conv2dFormat.F16().decode(all, 1001, 64, f32, 3);
            new Conv2dFormat.F16().decodeScalar(all, 1001, 64, scalar, 3);
            assertArrayEquals(scalar, f32, 0f);
        }
    }

    @Test
    void badArgumentsThrowMarbleException() {
        try (Arena arena = Arena.ofShared()) {
            ConvWeights w = ConvWeights.pack(Tensor.allocate(arena, DType.F16, 4, 3, 3, 3), null, arena);
            Tensor x = Tensor.allocate(arena, DType.F32, 1, 5, 5, 3);
            Tensor out = Tensor.allocate(arena, DType.F32, 1, 5, 5, 4);
            assertThrows(MarbleException.class,
                    () -> Conv2d.forward(Tensor.allocate(arena, DType.F32, 1, 5, 5, 2), w, 1, 1, out));
            assertThrows(MarbleException.class, () -> Conv2d.forward(x, w, 1, 0, out)); // out would be 3×3
            assertThrows(MarbleException.class, () -> Conv2d.forward(x, w, 0, 1, out));
            assertThrows(MarbleException.class, () -> Conv2d.forward(x, w, 1, -1, 1, 1, 1, out));
            assertThrows(MarbleException.class,
                    () -> Conv2d.forward(Tensor.allocate(arena, DType.F32, 1, 1, 1, 3), w, 1, 0, out));
            assertThrows(MarbleException.class,
                    () -> ConvWeights.pack(Tensor.allocate(arena, DType.I32, 4, 3, 3, 3), null, arena));
            ConvWeights square = ConvWeights.pack(Tensor.allocate(arena, DType.F32, 3, 3, 3, 3), null, arena);
            assertThrows(MarbleException.class, () -> Conv2d.forward(x, square, 1, 1, x)); // in place
            assertThrows(MarbleException.class, () -> ConvWeights.pack(Tensor.allocate(arena, DType.F32, 4, 3, 3), null,
                    arena));
            assertThrows(MarbleException.class, () -> ConvWeights.pack(Tensor.allocate(arena, DType.F32, 4, 3, 3, 3),
                    Tensor.allocate(arena, DType.F32, 5), arena));
        }
    }
}
