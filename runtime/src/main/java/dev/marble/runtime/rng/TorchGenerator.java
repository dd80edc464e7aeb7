package dev.marble.runtime.rng;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.util.Arrays;

/**
 * The random stream of {@code torch.Generator("cpu").manual_seed(seed)} in PyTorch 1.13, so that a
 * seed gives the same initial latents and sampler noise as diffusers on CPU.
 *
 * <p>Engine: MT19937 seeded with {@code init_genrand(seed & 0xffffffff)}. On top of it, torch's CPU
 * kernels:
 * <ul>
 *   <li>{@code rand} (float32): {@code (next32() & 0xFFFFFF) * 2^-24}, one word per element;
 *   <li>{@code randn} (float32) of n &ge; 16 elements (the AVX2 {@code normal_fill} path): n uniforms
 *       as for {@code rand}, then each full block of 16 becomes 8 Box-Muller pairs
 *       {@code (u[i+j], u[i+j+8])}; if n % 16 != 0, 16 fresh uniforms overwrite the last 16 slots and
 *       that (overlapping) block is transformed again;
 *   <li>{@code randn} of n &lt; 16 elements: the serial {@code normal_distribution<double>}, which draws
 *       two 53-bit doubles per pair, returns the cosine half and caches the sine half for the next
 *       element, even across calls (only {@link #manualSeed} clears the cache).
 * </ul>
 * The float path uses float maths as torch does (SLEEF, 1 ulp); here each function is evaluated in
 * double with {@link StrictMath} and rounded to float, which lands within 1-2 float ulps of torch and
 * is bit-identical on every JVM.
 *
 * <p>Stateful and not thread-safe: use one generator per generation.
 */
public final class TorchGenerator {
    private static final int N = 624;
    private static final int M = 397;
    private static final int MATRIX_A = 0x9908b0df;
    private static final int UPPER_MASK = 0x80000000;
    private static final int LOWER_MASK = 0x7fffffff;

    /** 2^-24: float32 uniforms keep the low 24 bits of a word. */
    private static final float FLOAT_UNIT = 0x1.0p-24f;
    /** 2^-53: double uniforms keep the low 53 bits of two words. */
    private static final double DOUBLE_UNIT = 0x1.0p-53;
    /** torch's {@code 2.0f * c10::pi<double>} rounded to float. */
    private static final float TWO_PI_F = (float) (2.0 * Math.PI);

    private final int[] mt = new int[N];
    private int next;
    private boolean hasCachedNormal;
    private double cachedNormal;
    private long seed;

    /** A generator in the state of {@code torch.Generator("cpu").manual_seed(seed)}. */
    public TorchGenerator(long seed) {
        manualSeed(seed);
    }

    /**
     * Re-seeds like {@code manual_seed}: only the low 32 bits count (seed 2^32 + 42 equals seed 42; a
     * negative seed is its two's complement), and the cached normal is dropped.
     */
    public TorchGenerator manualSeed(long seed) {
        this.seed = seed;
        mt[0] = (int) seed;
        for (int j = 1; j < N; j++) {
            int prev = mt[j - 1];
            mt[j] = 1812433253 * (prev ^ (prev >>> 30)) + j;
        }
        next = N;
        hasCachedNormal = false;
        cachedNormal = 0;
        return this;
    }

    /** The seed last given to {@link #manualSeed} (or the constructor). */
    public long initialSeed() {
        return seed;
    }

    /** The next raw 32-bit MT19937 output, as an int holding the unsigned bits. */
    public int nextInt32() {
        if (next >= N) {
            twist();
        }
        int y = mt[next++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y;
    }

    /** torch's {@code random64()}: the first word is the high half. */
    public long nextInt64() {
        long hi = nextInt32() & 0xffffffffL;
        long lo = nextInt32() & 0xffffffffL;
        return (hi << 32) | lo;
    }

    /** {@code torch.rand(shape, generator=g)} as a float32 array in [0, 1). */
    public float[] rand(int n) {
        checkCount(n);
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            out[i] = nextFloatUniform();
        }
        return out;
    }

    /** {@code torch.randn(n, generator=g)} (float32) as an array. */
    public float[] randn(int n) {
        checkCount(n);
        float[] out = new float[n];
        if (n >= 16) {
            normalFillVectorized(out);
        } else {
            for (int i = 0; i < n; i++) {
                out[i] = (float) nextDoubleNormal();
            }
        }
        return out;
    }

    /** {@code torch.randn(shape, generator=g)} (float32, contiguous) as a new tensor in {@code arena}. */
    public Tensor randn(Arena arena, long... shape) {
        return Tensor.fromFloats(arena, randn(numel(shape)), shape);
    }

    /** {@code torch.rand(shape, generator=g)} (float32, contiguous) as a new tensor in {@code arena}. */
    public Tensor rand(Arena arena, long... shape) {
        return Tensor.fromFloats(arena, rand(numel(shape)), shape);
    }

    private float nextFloatUniform() {
        return (nextInt32() & 0xFFFFFF) * FLOAT_UNIT;
    }

    private double nextDoubleUniform() {
        return (nextInt64() & ((1L << 53) - 1)) * DOUBLE_UNIT;
    }

    /** ATen {@code normal_fill} for float32 with n >= 16 (the AVX2 layout). */
    private void normalFillVectorized(float[] x) {
        int n = x.length;
        for (int i = 0; i < n; i++) {
            x[i] = nextFloatUniform();
        }
        for (int i = 0; i + 16 <= n; i += 16) {
            boxMuller16(x, i);
        }
        if (n % 16 != 0) {
            // torch recomputes the last 16 values from fresh uniforms, overlapping the previous block.
            int base = n - 16;
            for (int i = 0; i < 16; i++) {
                x[base + i] = nextFloatUniform();
            }
            boxMuller16(x, base);
        }
    }

    /** ATen {@code normal_fill_16}: u1 = 1 - x[j] (never 0), u2 = x[j + 8], in float maths. */
    private static void boxMuller16(float[] x, int i) {
        for (int j = 0; j < 8; j++) {
            float u1 = 1.0f - x[i + j];
            float u2 = x[i + j + 8];
            float logU1 = (float) StrictMath.log(u1);
            float radius = (float) StrictMath.sqrt(-2.0f * logU1);
            float theta = TWO_PI_F * u2;
            x[i + j] = radius * (float) StrictMath.cos(theta);
            x[i + j + 8] = radius * (float) StrictMath.sin(theta);
        }
    }

    /** ATen {@code normal_distribution<double>} with mean 0, std 1, and its one-value cache. */
    private double nextDoubleNormal() {
        if (hasCachedNormal) {
            hasCachedNormal = false;
            return cachedNormal;
        }
        double u1 = nextDoubleUniform();
        double u2 = nextDoubleUniform();
        double r = StrictMath.sqrt(-2.0 * StrictMath.log1p(-u2));
        double theta = 2.0 * Math.PI * u1;
        cachedNormal = r * StrictMath.sin(theta);
        hasCachedNormal = true;
        return r * StrictMath.cos(theta);
    }

    private void twist() {
        for (int k = 0; k < N; k++) {
            int y = (mt[k] & UPPER_MASK) | (mt[(k + 1) % N] & LOWER_MASK);
            mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ ((y & 1) != 0 ? MATRIX_A : 0);
        }
        next = 0;
    }

    private static int numel(long[] shape) {
        long n = 1;
        for (long s : shape) {
            if (s < 0) {
                throw new MarbleException("random tensor shape " + Arrays.toString(shape) + " has a negative dimension");
            }
            n = Math.multiplyExact(n, s);
        }
        if (n > Integer.MAX_VALUE - 8) {
            throw new MarbleException("random tensor shape " + Arrays.toString(shape) + " is too large");
        }
        return (int) n;
    }

    private static void checkCount(int n) {
        if (n < 0) {
            throw new MarbleException("random draw of " + n + " elements");
        }
    }
}
