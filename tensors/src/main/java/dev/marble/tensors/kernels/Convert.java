package dev.marble.tensors.kernels;

import dev.marble.tensors.Numerics;
import dev.marble.tensors.Simd;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Bulk conversions between F16 / BF16 and F32 over byte offsets of segments, bit-exact with
 * IEEE round-to-nearest-even in the narrowing direction.
 */
public final class Convert {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort S = ValueLayout.JAVA_SHORT_UNALIGNED;

    private Convert() {
    }

    /** n halves at src (byte offset srcOff) → n floats at dst (byte offset dstOff). */
    public static void f16ToF32(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        if (Simd.ENABLED) {
            f16ToF32Scalar(src, srcOff, dst, dstOff, n);
        } else {
            f16ToF32Scalar(src, srcOff, dst, dstOff, n);
        }
    }

    public static void f32ToF16(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        f32ToF16Scalar(src, srcOff, dst, dstOff, n);
    }

    public static void bf16ToF32(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        bf16ToF32Scalar(src, srcOff, dst, dstOff, n);
    }

    public static void f32ToBf16(MemorySegment src, long srcOff, MemorySegment dst, long dstOff, int n) {
        f32ToBf16Scalar(src, srcOff, dst, dstOff, n);
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
