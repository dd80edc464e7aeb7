package dev.marble.tensors.kernels;

import dev.marble.tensors.Simd;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vectorized elementary functions in float for the SIMD kernels. They are small static methods so
 * C2 inlines them into the calling loop (a vector passed to a method that is not inlined is boxed).
 * Own polynomials rather than {@code lanewise(EXP)}: that is an out-of-line SVML call on some JDKs
 * and its accuracy is not specified.
 */
final class ActivationMath {
    private static final VectorSpecies<Float> S = Simd.FLOAT;

    private static final float LOG2E = 1.44269504088896341f;
    // ln 2 split so that n·LN2_HI is exact for |n| < 2^9 and the remainder carries the rest.
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = (float) (Math.log(2.0) - 0.693359375);
    // 1.5·2^23: adding it rounds a float in ±2^22 to an integer (round-to-nearest-even) and leaves
    // that integer in the low mantissa bits.
    private static final float ROUNDER = 12582912f;
    // exp(r) = 1 + r + r²·(1/2! + r/3! + ... + r⁵/7!) on |r| ≤ ln2/2: the truncated Taylor series is
    // accurate to 7e-9 relative there, below float rounding.
    private static final float E2 = 1f / 2;
    private static final float E3 = 1f / 6;
    private static final float E4 = 1f / 24;
    private static final float E5 = 1f / 120;
    private static final float E6 = 1f / 720;
    private static final float E7 = 1f / 5040;

    private ActivationMath() {
    }

    /** 1 + r + ... + r⁷/7! for the reduced argument r. */
    private static FloatVector expPoly(FloatVector r) {
        FloatVector p = r.fma(E7, E6);
        p = p.fma(r, FloatVector.broadcast(S, E5));
        p = p.fma(r, FloatVector.broadcast(S, E4));
        p = p.fma(r, FloatVector.broadcast(S, E3));
        p = p.fma(r, FloatVector.broadcast(S, E2));
        return p.fma(r.mul(r), r).add(1f);
    }

    /**
     * e^x for x ≤ 0 (attention and softmax: x = s - max). Results below 2^-126 flush to zero, so
     * -∞ (a masked score) gives exactly 0. About 1 ulp.
     */
    static FloatVector expNonPositive(FloatVector x) {
        x = x.blend(-88f, x.lt(-88f));
        FloatVector t = x.fma(LOG2E, ROUNDER);
        FloatVector n = t.sub(ROUNDER);
        FloatVector r = n.fma(FloatVector.broadcast(S, -LN2_HI), x);
        r = n.fma(FloatVector.broadcast(S, -LN2_LO), r);
        // The integer n sits in the low bits of t: shifting them into the exponent field gives 2^n
        // (n = -127 gives the bits of +0).
        IntVector bits = t.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23).add(127 << 23);
        return expPoly(r).mul(bits.reinterpretAsFloats());
    }

    /**
     * e^x over the whole float range: overflow gives +∞, underflow gradual subnormals then 0, NaN
     * stays NaN. 2^n is applied as two factors so that n from -150 to 128 stays representable.
     */
    static FloatVector exp(FloatVector x) {
        x = x.max(-104f).min(89f);
        FloatVector t = x.fma(LOG2E, ROUNDER);
        FloatVector n = t.sub(ROUNDER);
        FloatVector r = n.fma(FloatVector.broadcast(S, -LN2_HI), x);
        r = n.fma(FloatVector.broadcast(S, -LN2_LO), r);
        IntVector ni = t.reinterpretAsInts().lanewise(VectorOperators.LSHL, 23)
                .lanewise(VectorOperators.ASHR, 23);
        IntVector n1 = ni.lanewise(VectorOperators.ASHR, 1);
        IntVector n2 = ni.sub(n1);
        FloatVector s1 = n1.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        FloatVector s2 = n2.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return expPoly(r).mul(s1).mul(s2);
    }

    /** x / (1 + e^(-k·x)): SiLU for k = 1, quick GELU for k = 1.702, tanh-GELU for the 2u form. */
    static FloatVector xSigmoid(FloatVector x, FloatVector kx) {
        return x.div(exp(kx.neg()).add(1f));
    }

    // erf(u) = u·Σ a_n u^(2n) with a_n = (2/√π)(-1)^n / (n!(2n+1)); eleven terms reach 1.2e-9 at |u| = 1.
    private static final float[] ERF_TAYLOR = erfTaylor(11);
    private static final float A0 = ERF_TAYLOR[0];
    private static final float A1 = ERF_TAYLOR[1];
    private static final float A2 = ERF_TAYLOR[2];
    private static final float A3 = ERF_TAYLOR[3];
    private static final float A4 = ERF_TAYLOR[4];
    private static final float A5 = ERF_TAYLOR[5];
    private static final float A6 = ERF_TAYLOR[6];
    private static final float A7 = ERF_TAYLOR[7];
    private static final float A8 = ERF_TAYLOR[8];
    private static final float A9 = ERF_TAYLOR[9];
    private static final float A10 = ERF_TAYLOR[10];

    private static float[] erfTaylor(int terms) {
        float[] a = new float[terms];
        double fact = 1;
        for (int n = 0; n < terms; n++) {
            if (n > 0) {
                fact *= n;
            }
            a[n] = (float) ((n % 2 == 0 ? 1 : -1) * 2 / Math.sqrt(Math.PI) / (fact * (2 * n + 1)));
        }
        return a;
    }

    /** erf(u) for |u| ≤ 1 (the Taylor polynomial); about 1 ulp there. */
    static FloatVector erfSmall(FloatVector u) {
        FloatVector z = u.mul(u);
        FloatVector p = z.fma(A10, A9);
        p = p.fma(z, FloatVector.broadcast(S, A8));
        p = p.fma(z, FloatVector.broadcast(S, A7));
        p = p.fma(z, FloatVector.broadcast(S, A6));
        p = p.fma(z, FloatVector.broadcast(S, A5));
        p = p.fma(z, FloatVector.broadcast(S, A4));
        p = p.fma(z, FloatVector.broadcast(S, A3));
        p = p.fma(z, FloatVector.broadcast(S, A2));
        p = p.fma(z, FloatVector.broadcast(S, A1));
        p = p.fma(z, FloatVector.broadcast(S, A0));
        return p.mul(u);
    }

    private static final float G0 = ActivationScalar.ERFC_G_F[0];
    private static final float G1 = ActivationScalar.ERFC_G_F[1];
    private static final float G2 = ActivationScalar.ERFC_G_F[2];
    private static final float G3 = ActivationScalar.ERFC_G_F[3];
    private static final float G4 = ActivationScalar.ERFC_G_F[4];
    private static final float G5 = ActivationScalar.ERFC_G_F[5];
    private static final float G6 = ActivationScalar.ERFC_G_F[6];
    private static final float G7 = ActivationScalar.ERFC_G_F[7];
    private static final float G8 = ActivationScalar.ERFC_G_F[8];
    private static final float G9 = ActivationScalar.ERFC_G_F[9];

    /**
     * erfc(z) for z ≥ 1 as e^(-z²)·g(t), t = 1/(1 + z/2), where g is a polynomial fitted to
     * erfc(z)·e^(z²) (see {@link ActivationScalar#ERFC_G}). z² is split into a rounded part and its
     * exact remainder so that the large exponent does not cost accuracy.
     */
    static FloatVector erfcLarge(FloatVector z) {
        FloatVector t = FloatVector.broadcast(S, 1f).div(z.fma(0.5f, 1f));
        FloatVector p = t.fma(G9, G8);
        p = p.fma(t, FloatVector.broadcast(S, G7));
        p = p.fma(t, FloatVector.broadcast(S, G6));
        p = p.fma(t, FloatVector.broadcast(S, G5));
        p = p.fma(t, FloatVector.broadcast(S, G4));
        p = p.fma(t, FloatVector.broadcast(S, G3));
        p = p.fma(t, FloatVector.broadcast(S, G2));
        p = p.fma(t, FloatVector.broadcast(S, G1));
        p = p.fma(t, FloatVector.broadcast(S, G0));
        FloatVector z2 = z.mul(z);
        FloatVector z2lo = z.fma(z, z2.neg());
        // e^(-z²) = e^(-hi)·e^(-lo) ≈ e^(-hi)·(1 - lo) with |lo| ≤ 1e-6.
        FloatVector e = exp(z2.neg()).mul(z2lo.neg().add(1f));
        return e.mul(p);
    }

    /**
     * 1 + erf(u), accurate in both tails: 2 - erfc(u) for u ≥ 1 and erfc(-u) for u ≤ -1, so the
     * negative tail keeps its relative precision (GELU of large negative x).
     */
    static FloatVector onePlusErf(FloatVector u) {
        FloatVector a = u.abs();
        VectorMask<Float> small = a.lt(1f);
        FloatVector inner = erfSmall(u.min(1f).max(-1f)).add(1f);
        FloatVector c = erfcLarge(a.max(1f).min(10f));
        FloatVector tail = FloatVector.broadcast(S, 2f).sub(c).blend(c, u.lt(0f));
        return tail.blend(inner, small);
    }

    /** torch's exact GELU: x/2 · (1 + erf(x/√2)). */
    static FloatVector gelu(FloatVector x) {
        return x.mul(0.5f).mul(onePlusErf(x.mul((float) (1 / Math.sqrt(2.0)))));
    }

    /** GELU with the tanh approximation, as x·sigmoid(2u), u = √(2/π)(x + 0.044715x³). */
    static FloatVector geluTanh(FloatVector x) {
        FloatVector u = x.mul(x).fma(0.044715f, 1f).mul(x).mul((float) Math.sqrt(2 / Math.PI));
        return xSigmoid(x, u.mul(2f));
    }
}
