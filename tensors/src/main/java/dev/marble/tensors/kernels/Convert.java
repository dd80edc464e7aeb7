package dev.marble.tensors.kernels;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Numerics;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Bulk conversions between F16 / BF16 and F32 over byte offsets of segments, bit-exact with
 * IEEE round-to-nearest-even in the narrowing direction. The Vector API has no half-float lanes:
 * the SIMD forms widen the 16-bit lanes to ints and move exponent and significand with integer
 * arithmetic. Their results equal {@link Float#float16ToFloat} / {@link Float#floatToFloat16} and
 * {@link Numerics} bit for bit (NaN: a NaN of the same sign).
 */
public final class Convert {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort S = ValueLayout.JAVA_SHORT_UNALIGNED;

    private Convert() {
    }

    /** n halves at src (byte offset srcOff) → n floats at dst (byte offset dstOff). */
    public static void f16ToF32(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        checkRange("f16ToF32", src, srcOff, 2, dst, dstOff, 4, n);
        if (Simd.ENABLED) {
            run(n, (from, to) -> f16ToF32Simd(src, srcOff, dst, dstOff, from, to));
        } else {
            f16ToF32Scalar(src, srcOff, dst, dstOff, n);
        }
    }

    /** n floats → n halves, round-to-nearest-even; overflow gives ±∞, NaN stays NaN. */
    public static void f32ToF16(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        checkRange("f32ToF16", src, srcOff, 4, dst, dstOff, 2, n);
        if (Simd.ENABLED) {
            run(n, (from, to) -> f32ToF16Simd(src, srcOff, dst, dstOff, from, to));
        } else {
            f32ToF16Scalar(src, srcOff, dst, dstOff, n);
        }
    }

    /** n bfloat16 → n floats (exact). */
    public static void bf16ToF32(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        checkRange("bf16ToF32", src, srcOff, 2, dst, dstOff, 4, n);
        if (Simd.ENABLED) {
            run(n, (from, to) -> bf16ToF32Simd(src, srcOff, dst, dstOff, from, to));
        } else {
            bf16ToF32Scalar(src, srcOff, dst, dstOff, n);
        }
    }

    /** n floats → n bfloat16, round-to-nearest-even; NaN stays a (quiet) NaN. */
    public static void f32ToBf16(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        checkRange("f32ToBf16", src, srcOff, 4, dst, dstOff, 2, n);
        if (Simd.ENABLED) {
            run(n, (from, to) -> f32ToBf16Simd(src, srcOff, dst, dstOff, from, to));
        } else {
            f32ToBf16Scalar(src, srcOff, dst, dstOff, n);
        }
    }

    private static void checkRange(String op, MemorySegment src, long srcOff, int srcBytes, MemorySegment dst,
            long dstOff, int dstBytes, int n) {
        if (n < 0 || srcOff < 0 || dstOff < 0 || srcOff + (long) srcBytes * n > src.byteSize()
                || dstOff + (long) dstBytes * n > dst.byteSize()) {
            throw new MarbleException(op + ": " + n + " elements at byte offsets " + srcOff + " -> " + dstOff
                    + " do not fit segments of " + src.byteSize() + " and " + dst.byteSize() + " bytes");
        }
    }

    @FunctionalInterface
    private interface Range {
        void run(int from, int to);
    }

    /** Large conversions (weights at load) split across the pool; small ones run here. */
    private static void run(int n, Range body) {
        if (n < PARALLEL_MIN) {
            body.run(0, n);
        } else {
            Parallel.forChunks(n, PARALLEL_MIN / 4, (chunk, from, to) -> body.run(from, to));
        }
    }

    private static final int PARALLEL_MIN = 1 << 16;
    private static final VectorSpecies<Float> FS = Simd.FLOAT;
    private static final VectorSpecies<Integer> IS = VectorSpecies.of(int.class, FS.vectorShape());
    /** Shorts with as many lanes as FS: half its width. */
    private static final VectorSpecies<Short> SS =
            VectorSpecies.of(short.class, VectorShape.forBitSize(Math.max(64, FS.vectorBitSize() / 2)));
    private static final int VL = FS.length();
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    /**
     * binary16 → binary32 by moving the exponent and significand into place: normal numbers rebias
     * the exponent by 112, ∞/NaN (exponent 31) by 224 (NaN keeps its payload), and subnormals are
     * rebuilt exactly as the float 2^-14·(1 + m/1024) minus 2^-14.
     */
    private static void f16ToF32Simd(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int from,
            int to) {
        int i = from;
        for (int end = from + (to - from) / VL * VL; i < end; i += VL) {
            IntVector x = (IntVector) ShortVector.fromMemorySegment(SS, src, srcOff + 2L * i, LE)
                    .convertShape(VectorOperators.S2I, IS, 0);
            IntVector sign = x.and(0x80000000);
            IntVector em = x.and(0x7fff);
            IntVector o = em.lanewise(VectorOperators.LSHL, 13);
            IntVector normal = o.add(0x38000000);
            normal = normal.blend(o.add(0x70000000), em.compare(VectorOperators.GE, 0x7c00));
            IntVector sub = o.add(0x38800000).reinterpretAsFloats().sub(0x1p-14f).reinterpretAsInts();
            IntVector r = normal.blend(sub, em.compare(VectorOperators.LT, 0x400)).or(sign);
            r.reinterpretAsFloats().intoMemorySegment(dst, dstOff + 4L * i, LE);
        }
        for (; i < to; i++) {
            dst.set(F, dstOff + 4L * i, Float.float16ToFloat(src.get(S, srcOff + 2L * i)));
        }
    }

    /**
     * binary32 → binary16, round-to-nearest-even. Normal results: add the rebias and 0x0fff plus the
     * kept LSB (ties go to even), then shift; a carry out of the significand correctly bumps the
     * exponent, up to ∞. Subnormal results: adding 0.5f lines the 2^-24 units up with the float's last
     * bit, so the float addition itself rounds. NaN keeps the payload bits Float.floatToFloat16 keeps.
     */
    private static void f32ToF16Simd(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int from,
            int to) {
        int i = from;
        for (int end = from + (to - from) / VL * VL; i < end; i += VL) {
            IntVector x = FloatVector.fromMemorySegment(FS, src, srcOff + 4L * i, LE).reinterpretAsInts();
            IntVector sign = x.lanewise(VectorOperators.LSHR, 16).and(0x8000);
            IntVector a = x.and(0x7fffffff);
            IntVector odd = a.lanewise(VectorOperators.LSHR, 13).and(1);
            IntVector r = a.add(0xc8000fff).add(odd).lanewise(VectorOperators.LSHR, 13);
            IntVector sub = a.reinterpretAsFloats().add(0.5f).reinterpretAsInts().sub(0x3f000000);
            r = r.blend(sub, a.compare(VectorOperators.LT, 0x38800000));
            r = r.blend(0x7c00, a.compare(VectorOperators.GE, 0x47800000));
            IntVector nan = a.and(0x007fe000).lanewise(VectorOperators.LSHR, 13)
                    .or(a.and(0x00001ff0).lanewise(VectorOperators.LSHR, 4))
                    .or(a.and(0x0000000f)).or(0x7c00);
            r = r.blend(nan, a.compare(VectorOperators.GT, 0x7f800000)).or(sign);
            r.convertShape(VectorOperators.I2S, SS, 0).intoMemorySegment(dst, dstOff + 2L * i, LE);
        }
        for (; i < to; i++) {
            dst.set(S, dstOff + 2L * i, Float.floatToFloat16(src.get(F, srcOff + 4L * i)));
        }
    }

    private static void bf16ToF32Simd(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int from,
            int to) {
        int i = from;
        for (int end = from + (to - from) / VL * VL; i < end; i += VL) {
            IntVector x = (IntVector) ShortVector.fromMemorySegment(SS, src, srcOff + 2L * i, LE)
                    .convertShape(VectorOperators.S2I, IS, 0);
            x.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoMemorySegment(dst, dstOff + 4L * i, LE);
        }
        for (; i < to; i++) {
            dst.set(F, dstOff + 4L * i, Numerics.bf16ToFloat(src.get(S, srcOff + 2L * i)));
        }
    }

    /** As {@link Numerics#floatToBf16}: add 0x7fff plus the kept LSB, keep the top half; NaN → quiet NaN. */
    private static void f32ToBf16Simd(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int from,
            int to) {
        int i = from;
        for (int end = from + (to - from) / VL * VL; i < end; i += VL) {
            IntVector x = FloatVector.fromMemorySegment(FS, src, srcOff + 4L * i, LE).reinterpretAsInts();
            IntVector top = x.lanewise(VectorOperators.LSHR, 16);
            IntVector r = x.add(top.and(1)).add(0x7fff).lanewise(VectorOperators.LSHR, 16);
            r = r.blend(top.or(0x40), x.and(0x7fffffff).compare(VectorOperators.GT, 0x7f800000));
            r.convertShape(VectorOperators.I2S, SS, 0).intoMemorySegment(dst, dstOff + 2L * i, LE);
        }
        for (; i < to; i++) {
            dst.set(S, dstOff + 2L * i, Numerics.floatToBf16(src.get(F, srcOff + 4L * i)));
        }
    }

    static void f16ToF32Scalar(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        for (int i = 0; i < n; i++) {
            dst.set(F, dstOff + 4L * i, Float.float16ToFloat(src.get(S, srcOff + 2L * i)));
        }
    }

    static void f32ToF16Scalar(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        for (int i = 0; i < n; i++) {
            dst.set(S, dstOff + 2L * i, Float.floatToFloat16(src.get(F, srcOff + 4L * i)));
        }
    }

    static void bf16ToF32Scalar(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        for (int i = 0; i < n; i++) {
            dst.set(F, dstOff + 4L * i, Numerics.bf16ToFloat(src.get(S, srcOff + 2L * i)));
        }
    }

    static void f32ToBf16Scalar(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        for (int i = 0; i < n; i++) {
            dst.set(S, dstOff + 2L * i, Numerics.floatToBf16(src.get(F, srcOff + 4L * i)));
        }
    }
}
