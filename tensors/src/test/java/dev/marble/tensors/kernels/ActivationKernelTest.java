package dev.marble.tensors.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.util.Random;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

class ActivationKernelTest {
    private static final VectorSpecies<Float> S = Simd.FLOAT;
    private static final int[] SIZES = {1, 7, 17, 33, 4099};

    @Test
    void vectorExpIsWithinTwoUlps() {
        float[] x = new float[S.length()];
        double worst = 0;
        for (int i = 0; i < 60_000; i++) {
            float v = -104f + i * (193f / 60_000);
            x[i % x.length] = v;
            if (i % x.length == x.length - 1) {
                float[] e = new float[x.length];
                float[] en = new float[x.length];
                ActivationMath.exp(FloatVector.fromArray(S, x, 0)).intoArray(e, 0);
                ActivationMath.expNonPositive(FloatVector.fromArray(S, x, 0)).intoArray(en, 0);
                for (int l = 0; l < x.length; l++) {
                    double ref = Math.exp(x[l]);
                    float rf = (float) ref;
                    if (Math.abs(rf) >= Float.MIN_NORMAL && !Float.isInfinite(rf)) {
                        double ulps = Math.abs(e[l] - ref) / Math.ulp(rf);
                        worst = Math.max(worst, ulps);
                        assertTrue(ulps <= 2, "exp(" + x[l] + ") = " + e[l] + ", want " + ref);
                        if (x[l] <= 0) {
                            assertTrue(Math.abs(en[l] - ref) <= 2 * Math.ulp(rf), "expNonPositive(" + x[l] + ")");
                        }
                    } else {
                        // Subnormal or overflowing results: gradual underflow and ∞ like Math.exp.
                        assertEquals(rf, e[l], Math.ulp(rf) + Float.MIN_VALUE, "exp(" + x[l] + ")");
                    }
                }
            }
        }
        float[] special = new float[S.length()];
        special[0] = Float.NEGATIVE_INFINITY;
        if (special.length > 1) {
            special[1] = Float.NaN;
            special[2] = Float.POSITIVE_INFINITY;
            special[3] = -0f;
        }
        float[] e = new float[special.length];
        ActivationMath.exp(FloatVector.fromArray(S, special, 0)).intoArray(e, 0);
        assertEquals(0f, e[0]);
        float[] en = new float[special.length];
        ActivationMath.expNonPositive(FloatVector.fromArray(S, special, 0)).intoArray(en, 0);
        assertEquals(0f, en[0], "a masked score must weigh exactly 0");
        if (special.length > 1) {
            assertTrue(Float.isNaN(e[1]));
            assertEquals(Float.POSITIVE_INFINITY, e[2]);
            assertEquals(1f, e[3]);
        }
        assertTrue(worst > 0, "the sweep ran");
    }

    @Test
    void erfAndGeluMatchKnownValues() {
        double[][] erf = {{0.1, 0.1124629160182849}, {0.5, 0.5204998778130465}, {1, 0.8427007929497149},
            {2, 0.9953222650189527}, {3, 0.9999779095030014}, {-0.7, -0.6778011938374184}};
        for (double[] c : erf) {
            assertEquals(c[1], ActivationScalar.erf(c[0]), 1e-9, "scalar erf(" + c[0] + ")");
            float[] in = new float[S.length()];
            in[0] = (float) c[0];
            float[] out = new float[S.length()];
            ActivationMath.onePlusErf(FloatVector.fromArray(S, in, 0)).intoArray(out, 0);
            // erf of the float argument: the float rounding of c[0] moves erf by up to erf'·ulp/2.
            double exact = c[1] + 2 / Math.sqrt(Math.PI) * Math.exp(-c[0] * c[0]) * ((float) c[0] - c[0]);
            assertEquals(exact, out[0] - 1.0, 1.2e-7, "vector erf(" + c[0] + ")");
        }
        double[][] gelu = {{1, 0.8413447460685429}, {-1, -0.15865525393145707}, {0.5, 0.34573123063700656},
            {-3, -0.00404969409489031}, {2.5, 2.4844758366855597}};
        for (double[] c : gelu) {
            assertEquals(c[1], ActivationScalar.gelu((float) c[0]), 1e-7, "scalar gelu(" + c[0] + ")");
            float[] in = new float[S.length()];
            in[0] = (float) c[0];
            float[] out = new float[S.length()];
            ActivationMath.gelu(FloatVector.fromArray(S, in, 0)).intoArray(out, 0);
            assertEquals(c[1], out[0], 2e-7 * Math.max(1, Math.abs(c[1])), "vector gelu(" + c[0] + ")");
        }
    }

    @Test
    void simdActivationsMatchScalar() {
        Random rnd = new Random(3);
        try (Arena arena = Arena.ofShared()) {
            for (Activation.Kind kind : Activation.Kind.values()) {
                for (int n : SIZES) {
                    float[] v = new float[n];
                    for (int i = 0; i < n; i++) {
                        v[i] = (rnd.nextFloat() * 2 - 1) * (i % 3 == 0 ? 30 : 6);
                    }
                    Tensor x = Tensor.fromFloats(arena, v, n);
                    Tensor fast = Tensor.allocate(arena, DType.F32, n);
                    Activation.apply(kind, x, fast);
                    Tensor slow = Tensor.allocate(arena, DType.F32, n);
                    if (kind == Activation.Kind.IDENTITY) {
                        x.copyTo(slow);
                    } else {
                        ActivationScalar.apply(kind, x, slow);
                    }
                    assertNear(slow.toFloatArray(), fast.toFloatArray(), 4e-7, 2e-7, kind + " n=" + n);
                    // In place gives the same result.
                    Activation.apply(kind, x, x);
                    assertNear(fast.toFloatArray(), x.toFloatArray(), 0, 0, kind + " in place n=" + n);
                }
            }
        }
    }

    @Test
    void simdGegluMatchesScalar() {
        Random rnd = new Random(4);
        try (Arena arena = Arena.ofShared()) {
            for (int n : new int[] {1, 3, 17, 40, 1280}) {
                int m = 1 + rnd.nextInt(9);
                Tensor x = Tensor.fromFloats(arena, AttentionKernelTest.random(rnd, m * 2 * n, 5), m, 2 * n);
                Tensor fast = Tensor.allocate(arena, DType.F32, m, n);
                Tensor slow = Tensor.allocate(arena, DType.F32, m, n);
                Activation.geglu(x, fast);
                ActivationScalar.geglu(x, slow, m, n);
                assertNear(slow.toFloatArray(), fast.toFloatArray(), 4e-7, 1e-6, "geglu n=" + n);
            }
        }
    }

    @Test
    void softmaxMatchesDoubleReference() {
        Random rnd = new Random(8);
        try (Arena arena = Arena.ofShared()) {
            for (int n : new int[] {1, 7, 77, 130, 4096}) {
                int m = 3;
                float[] v = AttentionKernelTest.random(rnd, m * n, 20);
                if (n > 2) {
                    v[1] = Float.NEGATIVE_INFINITY; // a masked entry
                }
                Tensor x = Tensor.fromFloats(arena, v, m, n);
                Tensor fast = Tensor.allocate(arena, DType.F32, m, n);
                Tensor slow = Tensor.allocate(arena, DType.F32, m, n);
                Activation.softmax(x, fast);
                ActivationScalar.softmax(x, slow, m, n);
                double[] ref = new double[m * n];
                for (int r = 0; r < m; r++) {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < n; j++) {
                        max = Math.max(max, v[r * n + j]);
                    }
                    double sum = 0;
                    for (int j = 0; j < n; j++) {
                        sum += Math.exp(v[r * n + j] - max);
                    }
                    for (int j = 0; j < n; j++) {
                        ref[r * n + j] = Math.exp(v[r * n + j] - max) / sum;
                    }
                }
                // Relative error: the float difference x - max rounds by ε/2·|x - max|, the exponential
                // adds a few ulps and the float sum a few more.
                float[] f = fast.toFloatArray();
                float[] s = slow.toFloatArray();
                for (int i = 0; i < ref.length; i++) {
                    double arg = Math.abs(Math.log(Math.max(ref[i], 1e-300)));
                    double tol = (4e-7 + 1.2e-7 * arg) * ref[i] + 1e-37;
                    assertEquals(ref[i], f[i], tol, "SIMD softmax n=" + n + " at " + i);
                    assertEquals(ref[i], s[i], tol, "scalar softmax n=" + n + " at " + i);
                }
            }
        }
    }

    /** |got - want| ≤ rel·|want| + abs elementwise (NaN only where want is NaN). */
    static void assertNear(float[] want, float[] got, double rel, double abs, String what) {
        for (int i = 0; i < want.length; i++) {
            double tol = rel * Math.abs(want[i]) + abs;
            if (Float.isNaN(want[i]) ? !Float.isNaN(got[i]) : !(Math.abs(got[i] - want[i]) <= tol)) {
                throw new AssertionError(what + " at " + i + ": want " + want[i] + ", got " + got[i] + " ("
                        + Simd.describe() + ")");
            }
        }
    }
}
