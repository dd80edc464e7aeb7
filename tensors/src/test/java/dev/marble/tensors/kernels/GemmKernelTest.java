package dev.marble.tensors.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The Vector API GEMM against its scalar twin, and the scalar twin against a double-precision sum. */
class GemmKernelTest {
    private static final int[] SIZES = {1, 7, 17, 33, 77, 130};

    @Test
    void simdMatchesScalarOnOddShapes() {
        assumeTrue(Simd.ENABLED, "scalar kernels forced");
        SplittableRandom rnd = new SplittableRandom(42);
        DType[] dtypes = {DType.F32, DType.F16, DType.BF16};
        int cases = 0;
        for (int m : SIZES) {
            for (int n : SIZES) {
                for (int k : SIZES) {
                    // Every shape with each dtype in turn; bias on every other case.
                    compare(rnd, m, n, k, dtypes[cases % 3], cases % 2 == 0, null);
                    cases++;
                }
            }
        }
    }

    @Test
    void simdMatchesScalarAcrossBlocksAndThreadSplits() {
        assumeTrue(Simd.ENABLED, "scalar kernels forced");
        SplittableRandom rnd = new SplittableRandom(7);
        int nr = PackedMatrix.NR;
        // Small blocks reach every block edge on small shapes: K blocks of at most 64 (ragged last
        // one), A blocks of 8 rows, decoded-panel blocks of 3 panels.
        GemmSimd.Blocking tiny = new GemmSimd.Blocking(64, 8 * 64, 3 * 64 * nr);
        for (DType dt : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            compare(rnd, 45, 7 * nr + 5, 200, dt, true, tiny);   // split over M
            compare(rnd, 3, 9 * nr + 3, 150, dt, false, tiny);   // split over N
        }
        compare(rnd, 77, 320, 300, DType.F16, true, GemmSimd.Blocking.DEFAULT);   // text-encoder rows
        compare(rnd, 2, 1280, 320, DType.BF16, true, GemmSimd.Blocking.DEFAULT);  // time embedding
        compare(rnd, 33, 3 * nr, 1100, DType.F32, true, GemmSimd.Blocking.DEFAULT); // three K blocks
    }

    @Test
    void scalarMatchesDoublePrecisionReference() {
        SplittableRandom rnd = new SplittableRandom(3);
        int m = 9;
        int n = 21;
        int k = 37;
        try (Arena arena = Arena.ofShared()) {
            float[] av = random(rnd, m * k);
            float[] wv = random(rnd, n * k);
            float[] bv = random(rnd, n);
            Tensor a = Tensor.fromFloats(arena, av, m, k);
            Tensor bias = Tensor.fromFloats(arena, bv, n);
            Tensor c = Tensor.allocate(arena, DType.F32, m, n);
            PackedMatrix b = PackedMatrix.ofLinear(Tensor.fromFloats(arena, wv, n, k), arena);
            GemmScalar.matmul(a, b, bias, c, m);
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double ref = bv[j];
                    for (int kk = 0; kk < k; kk++) {
                        ref += (double) av[i * k + kk] * wv[j * k + kk];
                    }
                    assertEquals(ref, c.getFloat(i, j), 1e-5, "C[" + i + ", " + j + "]");
                }
            }
        }
    }

    @Test
    void packingKeepsTheWeightDtypeAndValues() {
        SplittableRandom rnd = new SplittableRandom(11);
        int n = 4 * PackedMatrix.NR;
        int k = 50;
        try (Arena arena = Arena.ofShared()) {
            for (DType dt : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                Tensor w = weight(arena, rnd, n, k, dt);
                PackedMatrix b = PackedMatrix.ofLinear(w, arena);
                assertEquals(dt, b.dtype());
                assertEquals((long) n * k * dt.byteSize(), b.byteSize(), dt + " bytes per element");
                for (int j = 0; j < n; j++) {
                    for (int kk = 0; kk < k; kk++) {
                        assertEquals(w.getFloat(j, kk), b.get(kk, j));
                    }
                }
            }
            PackedMatrix ragged = PackedMatrix.ofLinear(weight(arena, rnd, 3, 10, DType.F16), arena);
            assertEquals(2L * PackedMatrix.NR * 10, ragged.byteSize(), "one zero-padded F16 panel");
        }
    }

    @Test
    void packsStridedAndConvShapedWeights() {
        SplittableRandom rnd = new SplittableRandom(5);
        try (Arena arena = Arena.ofShared()) {
            Tensor kn = weight(arena, rnd, 9, 12, DType.F16);          // [K, N] storage
            PackedMatrix fromView = PackedMatrix.ofLinear(kn.permute(1, 0), arena); // [N, K] view
            Tensor conv = Tensor.fromFloats(arena, random(rnd, 12 * 9), 12, 9, 1, 1); // 1×1 conv [OC, IC, 1, 1]
            PackedMatrix fromConv = PackedMatrix.ofLinear(conv, arena);
            assertEquals(9, fromView.k());
            assertEquals(12, fromView.n());
            assertEquals(9, fromConv.k());
            assertEquals(12, fromConv.n());
            for (int j = 0; j < 12; j++) {
                for (int kk = 0; kk < 9; kk++) {
                    assertEquals(kn.getFloat(kk, j), fromView.get(kk, j));
                    assertEquals(conv.getFloat(j, kk, 0, 0), fromConv.get(kk, j));
                }
            }
        }
    }

    @Test
    void halfPanelsDecodeEveryBitPatternExactly() {
        assumeTrue(Simd.ENABLED, "scalar kernels forced");
        int nr = PackedMatrix.NR;
        int k = 65536 / nr;
        try (Arena arena = Arena.ofShared()) {
            for (DType dt : new DType[] {DType.F16, DType.BF16}) {
                // W[n, kk] holds the bit pattern kk·NR + n, so panel 0 row kk decodes patterns kk·NR ...
                Tensor w = Tensor.allocate(arena, dt, nr, k);
                for (int j = 0; j < nr; j++) {
                    for (int kk = 0; kk < k; kk++) {
                        w.data().setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, (long) j * k + kk, (short) (kk * nr + j));
                    }
                }
                PackedMatrix b = PackedMatrix.ofLinear(w, arena);
                float[] out = new float[k * nr];
                b.decode(0, 0, k, out, 0);
                for (int bits = 0; bits < 65536; bits++) {
                    float want = dt == DType.F16 ? Float.float16ToFloat((short) bits) : Float.intBitsToFloat(bits << 16);
                    // NaN payloads may differ (Float.float16ToFloat quiets signaling NaNs once compiled).
                    int pattern = bits;
                    assertEquals(Float.isNaN(want) ? 0x7fc00000 : Float.floatToRawIntBits(want),
                            Float.isNaN(out[bits]) ? 0x7fc00000 : Float.floatToRawIntBits(out[bits]),
                            () -> dt + " bits 0x" + Integer.toHexString(pattern));
                }
            }
        }
    }

    @Test
    void rejectsMismatchedShapesAndDtypes() {
        try (Arena arena = Arena.ofShared()) {
            PackedMatrix b = PackedMatrix.ofLinear(Tensor.allocate(arena, DType.F32, 8, 5), arena);
            Tensor a = Tensor.allocate(arena, DType.F32, 3, 4);
            Tensor c = Tensor.allocate(arena, DType.F32, 3, 8);
            assertThrows(MarbleException.class, () -> Gemm.matmul(a, b, null, c));
            Tensor a5 = Tensor.allocate(arena, DType.F32, 3, 5);
            assertThrows(MarbleException.class, () -> Gemm.matmul(a5, b, null, Tensor.allocate(arena, DType.F32, 3, 7)));
            assertThrows(MarbleException.class, () -> Gemm.matmul(a5, b, Tensor.allocate(arena, DType.F32, 7), c));
            assertThrows(MarbleException.class, () -> PackedMatrix.ofLinear(Tensor.allocate(arena, DType.I32, 8, 5), arena));
        }
    }

    /** SIMD (through {@link Gemm}, or with the given blocking) against the scalar twin. */
    private static void compare(SplittableRandom rnd, int m, int n, int k, DType dt, boolean withBias,
                                GemmSimd.Blocking blocking) {
        try (Arena arena = Arena.ofShared()) {
            Tensor a = Tensor.fromFloats(arena, random(rnd, m * k), m, k);
            Tensor bias = withBias ? Tensor.fromFloats(arena, random(rnd, n), n) : null;
            PackedMatrix b = PackedMatrix.ofLinear(weight(arena, rnd, n, k, dt), arena);
            Tensor ref = Tensor.allocate(arena, DType.F32, m, n);
            Tensor out = Tensor.allocate(arena, DType.F32, m, n);
            fill(out.data(), Float.NaN); // every element must be written
            GemmScalar.matmul(a, b, bias, ref, m);
            if (blocking == null) {
                Gemm.matmul(a, b, bias, out);
            } else {
                GemmSimd.matmul(a, b, bias, out, m, blocking);
            }
            float[] r = ref.toFloatArray();
            float[] o = out.toFloatArray();
            float max = 0f;
            for (float v : r) {
                max = Math.max(max, Math.abs(v));
            }
            double tol = 1e-5 * Math.sqrt(k) * max;
            String what = "M=" + m + " N=" + n + " K=" + k + " " + dt + (withBias ? " +bias" : "");
            for (int i = 0; i < r.length; i++) {
                float err = Math.abs(o[i] - r[i]);
                if (!(err <= tol)) {
                    fail(what + ": C[" + i / n + ", " + i % n + "] = " + o[i] + ", scalar " + r[i] + ", tolerance " + tol);
                }
            }
        }
    }

    private static Tensor weight(Arena arena, SplittableRandom rnd, int n, int k, DType dt) {
        Tensor w32 = Tensor.fromFloats(arena, random(rnd, n * k), n, k);
        if (dt == DType.F32) {
            return w32;
        }
        Tensor w = Tensor.allocate(arena, dt, n, k);
        if (dt == DType.F16) {
            Convert.f32ToF16(w32.data(), 0, w.data(), 0, n * k);
        } else {
            Convert.f32ToBf16(w32.data(), 0, w.data(), 0, n * k);
        }
        return w;
    }

    private static float[] random(SplittableRandom rnd, int count) {
        float[] v = new float[count];
        for (int i = 0; i < count; i++) {
            v[i] = (float) rnd.nextDouble(-1, 1);
        }
        return v;
    }

    private static void fill(MemorySegment s, float v) {
        for (long i = 0; i < s.byteSize() / 4; i++) {
            s.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, v);
        }
    }
}
