package dev.marble.tensors.kernels;

import java.util.concurrent.atomic.LongAdder;

/**
 * Counts the floating-point operations of the heavy kernels (GEMM, convolution, attention: 2 per
 * multiply-add), so that the bench command reports a whole model's GFLOP/s from what actually ran.
 * One add per kernel call: free next to the kernel itself.
 */
public final class Flops {
    private static final LongAdder COUNT = new LongAdder();

    private Flops() {
    }

    static void add(long flops) {
        COUNT.add(flops);
    }

    /** Operations counted since start (or the last {@link #reset()}). */
    public static long count() {
        return COUNT.sum();
    }

    public static void reset() {
        COUNT.reset();
    }
}
