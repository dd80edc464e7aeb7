package dev.marble.tensors.quant;

import dev.marble.tensors.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * q8_0: blocks of 32 signed bytes sharing one F16 scale, 8.5 bits per weight (ggml's Q8_0 numerics in
 * Marble's planar storage).
 *
 * <pre>
 * plane    dtype  per row of K   block b of a row
 * qdata    I8     [K]            bytes 32b .. 32b+31 = q_0 .. q_31, two's complement, in -127..127
 * qscale   F16    [K/32]         element b = d
 *
 * value_i = q_i · d
 * </pre>
 *
 * Quantize: amax = max |x_i|, d = f16(amax / 127), q_i = clamp(round(x_i / d), -127, 127) with
 * ties away from zero (q from the rounded d, so the pair is the best for the stored scale; q = 0 when
 * d = 0).
 *
 * <p>Error bound, per element of a block: |x_i − value_i| ≤ amax · (1 + 2⁻¹¹) / 254 + 2⁻¹⁸. Half a
 * step d/2 inside the range, and rounding d to F16 costs at most 2⁻¹¹ relative (2⁻²⁵ absolute for a
 * subnormal d, which the 2⁻¹⁸ term covers: 127 · 2⁻²⁵). Range: amax ≤ 127 · 65504.
 */
public final class Q8_0 extends QuantFormat {
    private static final List<Plane> PLANES = List.of(new Plane("qdata", DType.I8), new Plane("qscale", DType.F16));
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** The format; after PLANES, which its constructor reads. */
    public static final Q8_0 INSTANCE = new Q8_0();

    private Q8_0() {
        super("q8_0", PLANES);
    }

    @Override
    public long[] planeRowShape(int plane, int k) {
        return switch (plane) {
            case 0 -> new long[] {k};
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
        for (int b = 0; b < k / BLOCK; b++) {
            int o = off + b * BLOCK;
            float amax = 0;
            for (int i = 0; i < BLOCK; i++) {
                amax = Math.max(amax, Math.abs(x[o + i]));
            }
            short h = toHalf(amax / 127f, "q8_0 scale");
            float d = Float.float16ToFloat(h);
            scale.set(HALF, scaleBase + 2L * b, h);
            for (int i = 0; i < BLOCK; i++) {
                int q = 0;
                if (d != 0) {
                    float v = x[o + i] / d;
                    q = clamp(v >= 0 ? Math.round(v) : -Math.round(-v), -127, 127);
                }
                data.set(ValueLayout.JAVA_BYTE, dataBase + (long) b * BLOCK + i, (byte) q);
            }
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
            long p = dataBase + (long) b * BLOCK;
            int o = off + (b - block) * BLOCK;
            for (int i = 0; i < BLOCK; i++) {
                dst[o + i] = data.get(ValueLayout.JAVA_BYTE, p + i) * d;
            }
        }
    }
}
