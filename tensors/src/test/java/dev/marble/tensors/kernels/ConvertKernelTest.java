package dev.marble.tensors.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import dev.marble.tensors.Numerics;
import dev.marble.tensors.Simd;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class ConvertKernelTest {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort H = ValueLayout.JAVA_SHORT_UNALIGNED;

    @Test
    void everyHalfWidensExactly() {
        try (Arena arena = Arena.ofShared()) {
            // Odd byte offsets and a count that is not a multiple of any vector width exercise the tails.
            int n = 65536;
            MemorySegment src = arena.allocate(2L * n + 2);
            MemorySegment dst = arena.allocate(4L * n + 4);
            for (int i = 0; i < n; i++) {
                src.set(H, 2 + 2L * i, (short) i);
            }
            Convert.f16ToF32(src, 2, dst, 4, n);
            for (int i = 0; i < n; i++) {
                float want = Float.float16ToFloat((short) i);
                float got = dst.get(F, 4 + 4L * i);
                assertSameFloat(want, got, "f16 0x" + Integer.toHexString(i));
            }
            Convert.bf16ToF32(src, 2, dst, 4, n);
            for (int i = 0; i < n; i++) {
                float want = Numerics.bf16ToFloat((short) i);
                assertSameFloat(want, dst.get(F, 4 + 4L * i), "bf16 0x" + Integer.toHexString(i));
            }
        }
    }

    @Test
    void narrowingRoundsToNearestEven() {
        float[] values = narrowingCases();
        try (Arena arena = Arena.ofShared()) {
            int n = values.length;
            MemorySegment src = arena.allocate(4L * n + 4);
            MemorySegment dst = arena.allocate(2L * n + 2);
            for (int i = 0; i < n; i++) {
                src.set(F, 4 + 4L * i, values[i]);
            }
            Convert.f32ToF16(src, 4, dst, 2, n);
            for (int i = 0; i < n; i++) {
                short want = Float.floatToFloat16(values[i]);
                short got = dst.get(H, 2 + 2L * i);
                assertSameHalf(want, got, values[i], true);
            }
            Convert.f32ToBf16(src, 4, dst, 2, n);
            for (int i = 0; i < n; i++) {
                short want = Numerics.floatToBf16(values[i]);
                short got = dst.get(H, 2 + 2L * i);
                assertSameHalf(want, got, values[i], false);
            }
        }
    }

    @Test
    void shortAndLargeRunsMatchScalar() {
        Random rnd = new Random(5);
        try (Arena arena = Arena.ofShared()) {
            for (int n : new int[] {0, 1, 3, 7, 17, 33, 70_001}) {
                MemorySegment f = arena.allocate(4L * n + 4);
                MemorySegment h = arena.allocate(2L * n + 2);
                MemorySegment h2 = arena.allocate(2L * n + 2);
                MemorySegment f2 = arena.allocate(4L * n + 4);
                MemorySegment f3 = arena.allocate(4L * n + 4);
                for (int i = 0; i < n; i++) {
                    f.set(F, 4L * i, (float) rnd.nextGaussian() * 1000f);
                }
                Convert.f32ToF16(f, 0, h, 0, n);
                Convert.f32ToF16Scalar(f, 0, h2, 0, n);
                assertEquals(-1, h.asSlice(0, 2L * n).mismatch(h2.asSlice(0, 2L * n)), "f32→f16 n=" + n);
                Convert.f16ToF32(h, 0, f2, 0, n);
                Convert.f16ToF32Scalar(h, 0, f3, 0, n);
                assertEquals(-1, f2.asSlice(0, 4L * n).mismatch(f3.asSlice(0, 4L * n)), "f16→f32 n=" + n);
                Convert.f32ToBf16(f, 0, h, 0, n);
                Convert.f32ToBf16Scalar(f, 0, h2, 0, n);
                assertEquals(-1, h.asSlice(0, 2L * n).mismatch(h2.asSlice(0, 2L * n)), "f32→bf16 n=" + n);
            }
        }
    }

    @Test
    void outOfRangeIsRejected() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment a = arena.allocate(64);
            MemorySegment b = arena.allocate(64);
            org.junit.jupiter.api.Assertions.assertThrows(dev.marble.tensors.MarbleException.class,
                    () -> Convert.f16ToF32(a, 0, b, 0, 17));
            org.junit.jupiter.api.Assertions.assertThrows(dev.marble.tensors.MarbleException.class,
                    () -> Convert.f32ToBf16(a, 4, b, 0, 16));
            org.junit.jupiter.api.Assertions.assertThrows(dev.marble.tensors.MarbleException.class,
                    () -> Convert.f32ToF16(a, 0, b, 0, -1));
        }
    }

    /**
     * Random bit patterns, every finite half (the round trip) and the midpoints to its neighbour
     * (ties), range edges, specials.
     */
    private static float[] narrowingCases() {
        List<Float> v = new ArrayList<>();
        Random rnd = new Random(11);
        for (int i = 0; i < 20_000; i++) {
            v.add(Float.intBitsToFloat(rnd.nextInt()));
        }
        for (int h = 0; h < 0x7c00; h++) {
            float a = Float.float16ToFloat((short) h);
            float b = Float.float16ToFloat((short) (h + 1));
            float mid = (float) (((double) a + b) / 2); // exact: 11 significant bits + 1
            float[] near = h % 4 == 0 ? new float[] {a, mid, Math.nextUp(mid), Math.nextDown(mid)} : new float[] {a, mid};
            for (float x : near) {
                v.add(x);
                v.add(-x);
            }
        }
        for (int b = 0; b < 0x7f80; b += 3) {
            // bf16 midpoints: the float with the rounding bit set and nothing below it.
            float mid = Float.intBitsToFloat((b << 16) | 0x8000);
            for (float x : new float[] {mid, Math.nextUp(mid), Math.nextDown(mid)}) {
                v.add(x);
                v.add(-x);
            }
        }
        float[] edges = {0f, -0f, 65504f, 65519.99f, 65520f, 65536f, 1e10f, Float.MAX_VALUE, 0x1p-24f, 0x1p-25f,
            0x1.000002p-25f, 0x1.8p-24f, 0x1p-14f, 0x1.ff8p-15f, 0x1.ffcp-15f, Float.MIN_VALUE, Float.MIN_NORMAL,
            Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, Float.intBitsToFloat(0x7f800001),
            Float.intBitsToFloat(0xffc00000), Float.intBitsToFloat(0x7fbfffff), Float.intBitsToFloat(0x7f802001)};
        for (float e : edges) {
            v.add(e);
            v.add(-e);
        }
        float[] out = new float[v.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = v.get(i);
        }
        return out;
    }

    private static void assertSameFloat(float want, float got, String what) {
        if (Float.isNaN(want)) {
            assertTrue(Float.isNaN(got), what + ": expected NaN, got " + got);
            assertEquals(Float.floatToRawIntBits(want) < 0, Float.floatToRawIntBits(got) < 0, what + ": NaN sign");
        } else if (Float.floatToRawIntBits(want) != Float.floatToRawIntBits(got)) {
            fail(what + ": expected " + want + ", got " + got + " at " + Simd.describe());
        }
    }

    /** Bit-exact, except that a NaN need only stay a NaN of the same sign (payloads differ between JIT tiers). */
    private static void assertSameHalf(short want, short got, float from, boolean f16) {
        int expMask = f16 ? 0x7c00 : 0x7f80;
        boolean wantNaN = (want & expMask) == expMask && (want & ~expMask & 0x7fff) != 0;
        String what = (f16 ? "f16" : "bf16") + " of " + from + " (0x"
                + Integer.toHexString(Float.floatToRawIntBits(from)) + ")";
        if (wantNaN) {
            assertTrue((got & expMask) == expMask && (got & ~expMask & 0x7fff) != 0, what + ": expected NaN, got 0x"
                    + Integer.toHexString(got & 0xffff));
            assertEquals(want & 0x8000, got & 0x8000, what + ": NaN sign");
        } else if (want != got) {
            fail(what + ": expected 0x" + Integer.toHexString(want & 0xffff) + ", got 0x"
                    + Integer.toHexString(got & 0xffff) + " at " + Simd.describe());
        }
    }
}
