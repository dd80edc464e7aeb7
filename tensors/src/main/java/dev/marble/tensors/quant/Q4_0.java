package dev.marble.tensors.quant;

import dev.marble.tensors.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * q4_0: blocks of 32 unsigned 4-bit codes sharing one F16 scale, 4.5 bits per weight (ggml's Q4_0
 * numerics and nibble order, in Marble's planar storage).
 *
 * <pre>
 * plane    dtype  per row of K   block b of a row
 * qdata    U8     [K/2]          bytes 16b .. 16b+15; byte j = q_j | q_(j+16) &lt;&lt; 4
 *                                (low nibble = element j, high nibble = element j + 16)
 * qscale   F16    [K/32]         element b = d
 *
 * value_i = (q_i − 8) · d
 * </pre>
 *
 * Quantize (ggml's rule): m = the x_i of largest magnitude (the first on ties), d = f16(m / −8),
 * q_i = clamp(round(x_i / d) + 8, 0, 15) with ties rounded up; q = 8 (value 0) when d = 0. The signed
 * scale puts m exactly on code 0 (value −8 · d = m), which buys the 16th level on m's side.
 *
 * <p>Error bound, per element of a block: |x_i − value_i| ≤ amax · (1 + 2⁻⁷) / 8 + 2⁻²¹. Inside the
 * range the error is d/2 = amax/16; the one loss is an element of the sign opposite to m near full
 * magnitude (x/d near +8), which is clamped to code 15 (+7 · d): one whole step, amax/8. Rounding d to
 * F16 adds at most 9 · 2⁻¹¹ relative (9 · 2⁻²⁵ absolute when subnormal). Range: amax ≤ 8 · 65504.
 */
public final class Q4_0 extends QuantFormat {
    private static final List<Plane> PLANES = List.of(new Plane("qdata", DType.U8), new Plane("qscale", DType.F16));
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** The format; after PLANES, which its constructor reads. */
    public static final Q4_0 INSTANCE = new Q4_0();

    private Q4_0() {
        super("q4_0", PLANES);
    }

    @Override
    public long[] planeRowShape(int plane, int k) {
        return switch (plane) {
            case 0 -> new long[] {k / 2};
            case 1 -> new long[] {k / BLOCK};
            default -> throw new IndexOutOfBoundsException(plane);
        };
    }

    @Override
    void quantizeFinite(float[] x, int off, QuantizedTensor dst, long row) {
        int k = dst.k();
        MemorySegment data = dst.plane(0).data();
        MemorySegment scale = dst.plane(1).data();
        long dataBase = dst.rowOffset(0, row);
        long scaleBase = dst.rowOffset(1, row);
        int[] q = new int[BLOCK];
        for (int b = 0; b < k / BLOCK; b++) {
            int o = off + b * BLOCK;
            float amax = 0;
            float max = 0;
            for (int i = 0; i < BLOCK; i++) {
                if (Math.abs(x[o + i]) > amax) {
                    amax = Math.abs(x[o + i]);
                    max = x[o + i];
                }
            }
            short h = toHalf(max / -8f, "q4_0 scale");
            float d = Float.float16ToFloat(h);
            scale.set(HALF, scaleBase + 2L * b, h);
            for (int i = 0; i < BLOCK; i++) {
                q[i] = d == 0 ? 8 : clamp(Math.round(x[o + i] / d) + 8, 0, 15);
            }
            packNibbles(q, data, dataBase + (long) b * (BLOCK / 2));
        }
    }

    @Override
    public void dequantizeBlocks(QuantizedTensor q, long row, int block, int count, float[] dst, int off) {
        MemorySegment data = q.plane(0).data();
        MemorySegment scale = q.plane(1).data();
        long dataBase = q.rowOffset(0, row);
        long scaleBase = q.rowOffset(1, row);
        for (int b = block; b < block + count; b++) {
            float d = Float.float16ToFloat(scale.get(HALF, scaleBase + 2L * b));
            // code · d − 8 · d is exactly (code − 8) · d: both products are exact in float
            unpackNibbles(data, dataBase + (long) b * (BLOCK / 2), d, -8 * d, dst, off + (b - block) * BLOCK);
        }
    }
}
