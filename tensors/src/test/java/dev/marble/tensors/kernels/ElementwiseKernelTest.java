package dev.marble.tensors.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class ElementwiseKernelTest {
    /** Pairs of shapes: a, then b broadcasting against it. */
    private static final long[][][] BROADCASTS = {
        {{2, 5, 7}, {2, 5, 7}},          // same shape
        {{2, 3, 4, 17}, {17}},           // bias over the last dim
        {{2, 3, 5, 40}, {2, 1, 1, 40}},  // time embedding per (batch, channel)
        {{3, 4, 3}, {1}},                // one value
        {{2, 3, 4, 1}, {2, 3, 4, 1}},    // C = 1
        {{2, 3, 5, 9}, {2, 3, 5, 1}},    // broadcast along the last dim
        {{2, 3, 33}, {3, 1}},            // general: middle dimension
        {{4, 1, 6}, {1, 6}},
        {{1000, 3}, {1000, 3}},
    };

    @Test
    void broadcastAddAndMulMatchScalarExactly() {
        Random rnd = new Random(21);
        try (Arena arena = Arena.ofShared()) {
            for (long[][] pair : BROADCASTS) {
                Tensor a = random(arena, rnd, pair[0]);
                Tensor b = random(arena, rnd, pair[1]);
                for (Elementwise.Op op : Elementwise.Op.values()) {
                    Tensor fast = Tensor.allocate(arena, DType.F32, pair[0]);
                    Tensor slow = Tensor.allocate(arena, DType.F32, pair[0]);
                    Elementwise.binary(op, a, b, fast);
                    ElementwiseScalar.binary(op, a, b, strides(pair[0], pair[1]), slow);
                    String what = op + " " + Arrays.toString(pair[0]) + " by " + Arrays.toString(pair[1]) + " at "
                            + Simd.describe();
                    assertArrayEquals(slow.toFloatArray(), fast.toFloatArray(), what);
                    // Reference from the definition, independent of both kernels.
                    float[] av = a.toFloatArray();
                    float[] got = fast.toFloatArray();
                    long[] idx = new long[pair[0].length];
                    for (int i = 0; i < av.length; i++) {
                        long[] bi = new long[pair[1].length];
                        for (int d = 0; d < bi.length; d++) {
                            int ad = d + idx.length - bi.length;
                            bi[d] = pair[1][d] == 1 ? 0 : idx[ad];
                        }
                        float y = b.getFloat(bi);
                        float want = op == Elementwise.Op.ADD ? av[i] + y : av[i] * y;
                        if (Float.compare(want, got[i]) != 0) {
                            throw new AssertionError(what + " at " + i + ": want " + want + ", got " + got[i]);
                        }
                        for (int d = idx.length - 1; d >= 0 && ++idx[d] == pair[0][d]; d--) {
                            idx[d] = 0;
                        }
                    }
                }
            }
            Tensor a = random(arena, rnd, 2, 3);
            assertThrows(MarbleException.class, () -> Elementwise.add(a, random(arena, rnd, 2), a));
        }
    }

    @Test
    void scaleUpsampleAndConcatMatchScalar() {
        Random rnd = new Random(22);
        try (Arena arena = Arena.ofShared()) {
            for (int c : new int[] {1, 3, 17, 40}) {
                Tensor x = random(arena, rnd, 2, 3, 5, c);
                Tensor fast = Tensor.allocate(arena, DType.F32, 2, 3, 5, c);
                Tensor slow = Tensor.allocate(arena, DType.F32, 2, 3, 5, c);
                Elementwise.scale(x, 0.18215f, -0.5f, fast);
                ElementwiseScalar.scale(x, 0.18215f, -0.5f, slow);
                assertArrayEquals(slow.toFloatArray(), fast.toFloatArray(), "scale C=" + c);

                Tensor up = Tensor.allocate(arena, DType.F32, 2, 6, 10, c);
                Elementwise.upsampleNearest2x(x, up);
                for (int n = 0; n < 2; n++) {
                    for (int y = 0; y < 6; y++) {
                        for (int xx = 0; xx < 10; xx++) {
                            for (int ch = 0; ch < c; ch++) {
                                if (up.getFloat(n, y, xx, ch) != x.getFloat(n, y / 2, xx / 2, ch)) {
                                    throw new AssertionError("upsample C=" + c + " at " + n + "," + y + "," + xx);
                                }
                            }
                        }
                    }
                }
                Tensor up2 = Tensor.allocate(arena, DType.F32, 2, 6, 10, c);
                ElementwiseScalar.upsampleNearest2x(x, up2);
                assertArrayEquals(up2.toFloatArray(), up.toFloatArray(), "upsample vs scalar C=" + c);

                Tensor other = random(arena, rnd, 2, 3, 5, 7);
                Tensor cat = Tensor.allocate(arena, DType.F32, 2, 3, 5, c + 7);
                Elementwise.concatChannels(x, other, cat);
                for (int ch = 0; ch < c + 7; ch++) {
                    float want = ch < c ? x.getFloat(1, 2, 4, ch) : other.getFloat(1, 2, 4, ch - c);
                    if (cat.getFloat(1, 2, 4, ch) != want) {
                        throw new AssertionError("concat C=" + c + " at channel " + ch);
                    }
                }
            }
        }
    }

    private static long[] strides(long[] as, long[] bs) {
        long[] st = new long[as.length];
        long s = 1;
        for (int i = bs.length - 1; i >= 0; i--) {
            int ai = i + as.length - bs.length;
            if (bs[i] == as[ai]) {
                st[ai] = s;
            }
            s *= bs[i];
        }
        return st;
    }

    private static Tensor random(Arena arena, Random rnd, long... shape) {
        int n = 1;
        for (long s : shape) {
            n *= (int) s;
        }
        return Tensor.fromFloats(arena, AttentionKernelTest.random(rnd, n, 3), shape);
    }
}
