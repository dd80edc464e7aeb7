package dev.marble.tensors.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * GEMM and conv2d on block-quantized weights ({@link QuantPanels}). The panel decoders are the
 * format's scalar reference operation for operation, so a decoded panel must equal
 * {@link QuantizedTensor#dequantize} bit for bit, and a kernel on quantized weights must give exactly
 * what the same kernel gives on the dequantized F32 weight; the scalar twins check the kernels as for
 * dense weights.
 */
class QuantKernelTest {
    private static final int NR = PackedMatrix.NR;

    /** Weights with a different scale and sign balance per row, so scales and offsets vary. */
    private static Tensor weight(Arena arena, SplittableRandom rnd, long... shape) {
        int n = (int) Arrays.stream(shape).reduce(1, (a, b) -> a * b);
        int rowLen = n / (int) shape[0];
        float[] v = new float[n];
        for (int r = 0; r < shape[0]; r++) {
            double scale = Math.exp(rnd.nextDouble(-4, 2));
            double shift = rnd.nextDouble(-0.5, 0.5);
            for (int i = 0; i < rowLen; i++) {
                v[r * rowLen + i] = (float) ((rnd.nextGaussian() + shift) * scale);
            }
        }
        return Tensor.fromFloats(arena, v, shape);
    }

    private static float[] random(SplittableRandom rnd, int count) {
        float[] v = new float[count];
        for (int i = 0; i < count; i++) {
            v[i] = (float) rnd.nextDouble(-1, 1);
        }
        return v;
    }

    private static void assertBits(float want, float got, String what) {
        if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(got)) {
            fail(what + ": got " + got + ", expected " + want);
        }
    }

    @Test
    void panelsDecodeToTheReferenceValues() {
        SplittableRandom rnd = new SplittableRandom(1);
        // N: below, at and past a panel; K: 32·odd, a whole and a partial q4_k super-block
        int[][] shapes = {{1, 32}, {NR, 96}, {NR + 3, 288}, {2 * NR + 5, 544}, {37, 256}};
        try (Arena arena = Arena.ofShared()) {
            for (QuantFormat f : QuantFormat.all()) {
                for (int[] s : shapes) {
                    checkPanels(arena, QuantizedTensor.quantize("w", weight(arena, rnd, s[0], s[1]), f, arena));
                }
                checkPanels(arena, QuantizedTensor.quantize("w", weight(arena, rnd, 21, 160, 1, 1), f, arena));
            }
        }
    }

    private static void checkPanels(Arena arena, QuantizedTensor q) {
        String what = q.toString();
        int n = (int) q.shape()[0];
        int k = q.k();
        float[] ref = q.dequantize(arena).toFloatArray(); // [N, K]
        long sourceBytes = q.byteSize();
        PackedMatrix b = PackedMatrix.ofQuantized(q, arena);
        assertEquals(q.format().id(), b.format());
        assertEquals(q.plane(0).dtype(), b.dtype());
        assertEquals(k, b.k());
        assertEquals(n, b.n());
        // the source's bytes, and zero columns for a ragged last panel
        assertEquals(sourceBytes / n * b.panels() * NR, b.byteSize(), what + " bytes");
        for (int j = 0; j < n; j++) {
            for (int kk = 0; kk < k; kk++) {
                assertBits(ref[j * k + kk], b.get(kk, j), what + " get(" + kk + ", " + j + ")");
            }
        }
        float[] panel = new float[k * NR];
        for (int p = 0; p < b.panels(); p++) {
            Arrays.fill(panel, Float.NaN);
            b.decode(p, 0, k, panel, 0);
            checkRows(ref, k, n, p, 0, k, panel, 0, what);
            // a K block starting inside a q4_k super-block, into an offset destination
            if (k >= 96) {
                float[] part = new float[2 * 32 * NR + 5];
                b.decode(p, 32, 64, part, 5);
                checkRows(ref, k, n, p, 32, 64, part, 5, what + " rows [32, 96)");
            }
        }
        assertThrows(IllegalArgumentException.class, () -> b.decode(0, 16, 32, panel, 0));
    }

    private static void checkRows(float[] ref, int k, int n, int p, int k0, int kc, float[] got, int off, String what) {
        for (int kk = 0; kk < kc; kk++) {
            for (int j = 0; j < NR; j++) {
                int col = p * NR + j;
                float v = got[off + kk * NR + j];
                String at = what + " panel " + p + " row " + (k0 + kk) + " column " + j;
                if (col < n) {
                    assertBits(ref[col * k + k0 + kk], v, at);
                } else if (v != 0f) {
                    fail(at + " (padding) is " + v);
                }
            }
        }
    }

    @Test
    void gemmOnQuantizedWeightsEqualsGemmOnTheirValues() {
        SplittableRandom rnd = new SplittableRandom(2);
        int[] ms = {1, 3, 8, 33, 77};
        int[][] nk = {{NR + 3, 96}, {3 * NR, 288}, {45, 544}, {2, 64}};
        GemmSimd.Blocking tiny = new GemmSimd.Blocking(64, 8 * 64, 3 * 64 * NR);
        int c = 0;
        try (Arena arena = Arena.ofShared()) {
            for (QuantFormat f : QuantFormat.all()) {
                for (int[] s : nk) {
                    QuantizedTensor q = QuantizedTensor.quantize("w", weight(arena, rnd, s[0], s[1]), f, arena);
                    PackedMatrix dense = PackedMatrix.ofLinear(q.dequantize(arena), arena);
                    PackedMatrix quant = PackedMatrix.ofQuantized(q, arena);
                    for (int m : ms) {
                        c++;
                        compareGemm(arena, rnd, m, quant, dense, c % 2 == 0, c % 3 == 0 ? tiny : null);
                    }
                }
            }
        }
    }

    private static void compareGemm(Arena arena, SplittableRandom rnd, int m, PackedMatrix quant, PackedMatrix dense,
            boolean withBias, GemmSimd.Blocking blocking) {
        int n = quant.n();
        int k = quant.k();
        String what = quant.format() + " M=" + m + " N=" + n + " K=" + k + (withBias ? " +bias" : "")
                + (blocking != null ? " small blocks" : "");
        Tensor a = Tensor.fromFloats(arena, random(rnd, m * k), m, k);
        Tensor bias = withBias ? Tensor.fromFloats(arena, random(rnd, n), n) : null;
        Tensor q = Tensor.allocate(arena, DType.F32, m, n);
        Tensor d = Tensor.allocate(arena, DType.F32, m, n);
        Tensor s = Tensor.allocate(arena, DType.F32, m, n);
        q.data().fill((byte) 0x7f); // every element must be written
        if (blocking == null) {
            Gemm.matmul(a, quant, bias, q);
            Gemm.matmul(a, dense, bias, d);
        } else {
            GemmSimd.matmul(a, quant, bias, q, m, blocking);
            GemmSimd.matmul(a, dense, bias, d, m, blocking);
        }
        GemmScalar.matmul(a, quant, bias, s, m);
        float[] qv = q.toFloatArray();
        float[] dv = d.toFloatArray();
        float[] sv = s.toFloatArray();
        float max = 0f;
        for (float v : sv) {
            max = Math.max(max, Math.abs(v));
        }
        double tol = 1e-5 * Math.sqrt(k) * max;
        for (int i = 0; i < qv.length; i++) {
            assertBits(dv[i], qv[i], what + ": C[" + i / n + ", " + i % n + "] vs F32 weights");
            if (!(Math.abs(qv[i] - sv[i]) <= tol)) {
                fail(what + ": C[" + i / n + ", " + i % n + "] = " + qv[i] + ", scalar " + sv[i] + ", tolerance " + tol);
            }
        }
    }

    @Test
    void scalarGemmOnQuantizedWeightsEqualsScalarGemmOnTheirValues() {
        SplittableRandom rnd = new SplittableRandom(3);
        try (Arena arena = Arena.ofShared()) {
            for (QuantFormat f : QuantFormat.all()) {
                QuantizedTensor q = QuantizedTensor.quantize("w", weight(arena, rnd, 19, 96, 1, 1), f, arena);
                Tensor a = Tensor.fromFloats(arena, random(rnd, 5 * 96), 5, 96);
                Tensor bias = Tensor.fromFloats(arena, random(rnd, 19), 19);
                Tensor got = Tensor.allocate(arena, DType.F32, 5, 19);
                Tensor want = Tensor.allocate(arena, DType.F32, 5, 19);
                GemmScalar.matmul(a, PackedMatrix.ofQuantized(q, arena), bias, got, 5);
                GemmScalar.matmul(a, PackedMatrix.ofLinear(q.dequantize(arena), arena), bias, want, 5);
                float[] g = got.toFloatArray();
                float[] w = want.toFloatArray();
                for (int i = 0; i < g.length; i++) {
                    assertBits(w[i], g[i], f + " C[" + i / 19 + ", " + i % 19 + "]");
                }
            }
        }
    }

    @Test
    void convOnQuantizedWeightsEqualsConvOnTheirValues() {
        SplittableRandom rnd = new SplittableRandom(4);
        int[][] pads = {{1, 1, 1, 1}, {0, 0, 0, 0}, {0, 0, 1, 1}, {1, 0, 0, 1}};
        // {batch, h, w, ic, oc, k, stride}: odd sizes, several input-channel slabs (3×3 slabs are 64
        // channels at 256 bits, a 1×1 one 256), a ragged output-channel block
        int[][] cases = {
            {1, 5, 7, 32, 3, 3, 1}, {2, 9, 6, 96, 2 * NR + 1, 3, 2}, {1, 7, 7, 160, NR, 3, 1},
            {1, 4, 9, 288, 37, 1, 1}, {2, 5, 5, 64, 20, 1, 2}, {1, 3, 11, 544, 9, 3, 2}};
        int c = 0;
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : cases) {
                for (QuantFormat f : QuantFormat.all()) {
                    int[] p = s[5] == 1 && c % 2 == 0 ? pads[1] : pads[c % pads.length];
                    c++;
                    QuantizedTensor q = QuantizedTensor.quantize("w", weight(arena, rnd, s[4], s[3], s[5], s[5]), f, arena);
                    Tensor bias = c % 3 == 0 ? null : Tensor.fromFloats(arena, random(rnd, s[4]), s[4]);
                    ConvWeights quant = ConvWeights.packQuantized(q, bias, arena);
                    ConvWeights dense = ConvWeights.pack(q.dequantize(arena), bias, arena);
                    compareConv(arena, rnd, s, p, quant, dense);
                }
            }
        }
    }

    private static void compareConv(Arena arena, SplittableRandom rnd, int[] s, int[] p, ConvWeights quant,
            ConvWeights dense) {
        int b = s[0];
        int h = s[1];
        int wd = s[2];
        int ic = s[3];
        int oc = s[4];
        int stride = s[6];
        String what = quant.format() + " x[" + b + "," + h + "," + wd + "," + ic + "] w[" + oc + "," + ic + "," + s[5]
                + "," + s[5] + "] stride " + stride + " pad " + Arrays.toString(p);
        int oh = Conv2d.outSize(h, s[5], stride, p[0] + p[2]);
        int ow = Conv2d.outSize(wd, s[5], stride, p[1] + p[3]);
        Tensor x = Tensor.fromFloats(arena, random(rnd, b * h * wd * ic), b, h, wd, ic);
        Tensor q = Tensor.allocate(arena, DType.F32, b, oh, ow, oc);
        Tensor d = Tensor.allocate(arena, DType.F32, b, oh, ow, oc);
        Tensor sq = Tensor.allocate(arena, DType.F32, b, oh, ow, oc);
        Tensor sd = Tensor.allocate(arena, DType.F32, b, oh, ow, oc);
        q.data().fill((byte) 0x7f);
        Conv2d.forward(x, quant, stride, p[0], p[1], p[2], p[3], q);
        Conv2d.forward(x, dense, stride, p[0], p[1], p[2], p[3], d);
        Conv2dScalar.forward(x, quant, stride, p[0], p[1], sq);
        Conv2dScalar.forward(x, dense, stride, p[0], p[1], sd);
        float[] qv = q.toFloatArray();
        float[] dv = d.toFloatArray();
        float[] sqv = sq.toFloatArray();
        float[] sdv = sd.toFloatArray();
        float max = 0f;
        for (float v : sqv) {
            max = Math.max(max, Math.abs(v));
        }
        float tol = 2e-6f * Math.max(1f, max) * (float) Math.sqrt(ic / 32.0);
        for (int i = 0; i < qv.length; i++) {
            assertBits(dv[i], qv[i], what + ": element " + i + " vs F32 weights");
            assertBits(sdv[i], sqv[i], what + ": element " + i + " (scalar) vs F32 weights");
            if (!(Math.abs(qv[i] - sqv[i]) <= tol)) {
                fail(what + ": element " + i + " is " + qv[i] + ", scalar " + sqv[i] + " (tolerance " + tol + ")");
            }
        }
    }

    @Test
    void convWeightsReadBackAndKeepTheSourceSize() {
        SplittableRandom rnd = new SplittableRandom(5);
        try (Arena arena = Arena.ofShared()) {
            for (QuantFormat f : QuantFormat.all()) {
                int oc = NR + 3;
                QuantizedTensor q = QuantizedTensor.quantize("w", weight(arena, rnd, oc, 288, 3, 2), f, arena);
                long sourceBytes = q.byteSize();
                Tensor ref = q.dequantize(arena);
                ConvWeights w = ConvWeights.packQuantized(q, null, arena);
                assertEquals(f.id(), w.format());
                assertEquals(q.plane(0).dtype(), w.dtype());
                assertEquals(sourceBytes / oc * 2 * NR, w.byteSize(), f + " bytes");
                for (int o = 0; o < oc; o++) {
                    for (int i = 0; i < 288; i++) {
                        for (int y = 0; y < 3; y++) {
                            for (int x = 0; x < 2; x++) {
                                assertBits(ref.getFloat(o, i, y, x), w.get(o, i, y, x), f + " W[" + o + ", " + i + ", " + y
                                        + ", " + x + "]");
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void rejectsShapesThatAreNoMatrixOrConv() {
        SplittableRandom rnd = new SplittableRandom(6);
        try (Arena arena = Arena.ofShared()) {
            QuantizedTensor conv = QuantizedTensor.quantize("w", weight(arena, rnd, 4, 32, 3, 3), QuantFormat.parse("q8_0"),
                    arena);
            QuantizedTensor linear = QuantizedTensor.quantize("w", weight(arena, rnd, 4, 32), QuantFormat.parse("q4_0"), arena);
            assertThrows(MarbleException.class, () -> PackedMatrix.ofQuantized(conv, arena));
            assertThrows(MarbleException.class, () -> ConvWeights.packQuantized(linear, null, arena));
            assertThrows(MarbleException.class, () -> ConvWeights.packQuantized(conv, Tensor.allocate(arena, DType.F32, 5),
                    arena));
        }
    }
}
