package dev.marble.tensors;

/** Scalar bit-level conversions between float formats. The vectorized forms live in kernels.Convert. */
public final class Numerics {
    private Numerics() {
    }

    /** bfloat16 is the top half of a float32: widening is a shift. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /** float32 to bfloat16 with round-to-nearest-even; NaN stays a (quiet) NaN. */
    public static short floatToBf16(float f) {
        int x = Float.floatToRawIntBits(f);
        if ((x & 0x7fffffff) > 0x7f800000) {
            return (short) ((x >>> 16) | 0x0040);
        }
        int rounding = 0x7fff + ((x >>> 16) & 1);
        return (short) ((x + rounding) >>> 16);
    }

    /** OCP FP8 E4M3 (bias 7, no infinities, S.1111.111 is NaN). */
    public static float f8e4m3ToFloat(byte b) {
        int v = b & 0xff;
        int sign = v >>> 7;
        int exp = (v >>> 3) & 0xf;
        int man = v & 0x7;
        float mag;
        if (exp == 0xf && man == 0x7) {
            mag = Float.NaN;
        } else if (exp == 0) {
            mag = man * 0x1p-9f; // subnormal: man/8 × 2^-6
        } else {
            mag = (1 + man / 8f) * (float) Math.scalb(1.0, exp - 7);
        }
        return sign == 1 ? -mag : mag;
    }

    /** FP8 E5M2 is the top byte of an IEEE binary16. */
    public static float f8e5m2ToFloat(byte b) {
        return Float.float16ToFloat((short) ((b & 0xff) << 8));
    }
}
