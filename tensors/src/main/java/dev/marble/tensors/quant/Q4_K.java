package dev.marble.tensors.quant;

import dev.marble.tensors.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;

/**
 * q4_k: Marble's k-quant-like 4-bit format. Sub-blocks of 32 unsigned 4-bit codes, each with its own
 * scale and offset stored as 8-bit multiples of an F16 scale and offset per super-block of 8 sub-blocks
 * (256 weights). 4.625 bits per weight when K is a multiple of 256; the last super-block of a row may
 * hold fewer sub-blocks, so any K that is a multiple of 32 works (SD's 320 and 640 channels: 4.7 and
 * 4.65 bits). Not ggml's Q4_K byte layout: the planes are byte-addressed, so the 8-bit sub-scales cost
 * nothing over ggml's packed 6-bit ones and are finer.
 *
 * <pre>
 * plane    dtype  per row of K         sub-block b (super-block s = b / 8) of a row
 * qdata    U8     [K/2]                bytes 16b .. 16b+15; byte j = q_j | q_(j+16) &lt;&lt; 4
 *                                      (low nibble = element j, high nibble = element j + 16)
 * qscale   U8     [K/32]               element b = sc_b, 0..255
 * qmin     I8     [K/32]               element b = mn_b, -127..127
 * qsuper   F16    [ceil(K/256), 2]     element [s, 0] = D_s, [s, 1] = M_s (both ≥ 0)
 *
 * d_b = D_s · sc_b / 255,   m_b = M_s · mn_b / 127   (float, evaluated left to right)
 * value_i = q_i · d_b + m_b
 * </pre>
 *
 * Quantize, per sub-block: start from the min-max grid (m = min, d = (max − min) / 15), then alternate
 * nearest-code assignment and the least-squares (d, m) for those codes while the squared error drops
 * (at most {@value #REFINE} rounds); this never does worse than min-max and gains about 0.7 dB on
 * Gaussian weights. Per super-block: D = f16(max d_b), M = f16(max |m_b|), sc_b = round(255 d_b / D),
 * mn_b = round(127 m_b / M), and the codes are assigned once more against the stored (d_b, m_b).
 *
 * <p>Error bound, per sub-block with range [lo, hi] in super-block (D, M):
 * rms_i |x_i − value_i| ≤ (hi − lo) / 30 + D / 34 + M / 254 + 2⁻²⁰. The fit's rms error is at most the
 * min-max grid's half step (hi − lo) / 30; storing d_b and m_b as 8-bit multiples moves each grid
 * point by at most 15 · D / 510 + M / 254; the last term covers F16 subnormals. Range: |x| ≤ 65504.
 */
public final class Q4_K extends QuantFormat {
    /** Sub-blocks per super-block. */
    public static final int SUPER = 8;
    /** Least-squares refinement rounds per sub-block. */
    static final int REFINE = 4;

    private static final List<Plane> PLANES = List.of(new Plane("qdata", DType.U8), new Plane("qscale", DType.U8),
            new Plane("qmin", DType.I8), new Plane("qsuper", DType.F16));
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** The format; after PLANES, which its constructor reads. */
    public static final Q4_K INSTANCE = new Q4_K();

    private Q4_K() {
        super("q4_k", PLANES);
    }

    /** Super-blocks in a row of k elements; the last may be partial. */
    public static int superBlocks(int k) {
        return (k / BLOCK + SUPER - 1) / SUPER;
    }

    @Override
    public long[] planeRowShape(int plane, int k) {
        return switch (plane) {
            case 0 -> new long[] {k / 2};
            case 1, 2 -> new long[] {k / BLOCK};
            case 3 -> new long[] {superBlocks(k), 2};
            default -> throw new IndexOutOfBoundsException(plane);
        };
    }

    @Override
    void quantizeFinite(float[] x, int off, QuantizedTensor dst, long row) {
        int k = dst.k();
        MemorySegment data = dst.plane(0).data();
        MemorySegment scales = dst.plane(1).data();
        MemorySegment mins = dst.plane(2).data();
        MemorySegment supers = dst.plane(3).data();
        long dataBase = dst.rowOffset(0, row);
        long scaleBase = dst.rowOffset(1, row);
        long minBase = dst.rowOffset(2, row);
        long superBase = dst.rowOffset(3, row);
        int nb = k / BLOCK;
        double[] fit = new double[2];
        float[] d = new float[SUPER];
        float[] m = new float[SUPER];
        int[] q = new int[BLOCK];
        for (int s = 0; s < superBlocks(k); s++) {
            int b0 = s * SUPER;
            int b1 = Math.min(nb, b0 + SUPER);
            float dmax = 0;
            float mmax = 0;
            for (int b = b0; b < b1; b++) {
                fitSubBlock(x, off + b * BLOCK, q, fit);
                d[b - b0] = (float) fit[0];
                m[b - b0] = (float) fit[1];
                dmax = Math.max(dmax, d[b - b0]);
                mmax = Math.max(mmax, Math.abs(m[b - b0]));
            }
            short dh = toHalf(dmax, "q4_k super-block scale");
            short mh = toHalf(mmax, "q4_k super-block offset");
            supers.set(HALF, superBase + 4L * s, dh);
            supers.set(HALF, superBase + 4L * s + 2, mh);
            float dSuper = Float.float16ToFloat(dh);
            float mSuper = Float.float16ToFloat(mh);
            for (int b = b0; b < b1; b++) {
                int sc = dSuper == 0 ? 0 : clamp(Math.round(255 * d[b - b0] / dSuper), 0, 255);
                int mn = mSuper == 0 ? 0 : clamp(Math.round(127 * m[b - b0] / mSuper), -127, 127);
                scales.set(ValueLayout.JAVA_BYTE, scaleBase + b, (byte) sc);
                mins.set(ValueLayout.JAVA_BYTE, minBase + b, (byte) mn);
                // the exact (d, m) the decoder will compute
                float db = dSuper * sc / 255f;
                float mb = mSuper * mn / 127f;
                int o = off + b * BLOCK;
                for (int i = 0; i < BLOCK; i++) {
                    q[i] = db == 0 ? 0 : clamp(Math.round((x[o + i] - mb) / db), 0, 15);
                }
                packNibbles(q, data, dataBase + (long) b * (BLOCK / 2));
            }
        }
    }

    /**
     * The affine grid m + d · {0..15} for x[o .. o + 32): min-max, then least-squares rounds while the
     * squared error drops. Writes (d, m) to {@code out}; d ≥ 0, and d = 0 for a constant block.
     */
    static void fitSubBlock(float[] x, int o, int[] q, double[] out) {
        float lo = x[o];
        float hi = x[o];
        for (int i = 1; i < BLOCK; i++) {
            lo = Math.min(lo, x[o + i]);
            hi = Math.max(hi, x[o + i]);
        }
        double d = ((double) hi - lo) / 15;
        double m = lo;
        if (!(d > 0)) {
            out[0] = 0;
            out[1] = lo;
            return;
        }
        double err = assign(x, o, d, m, q);
        int[] q2 = new int[BLOCK];
        for (int round = 0; round < REFINE; round++) {
            // least squares of x ≈ d · q + m over the current codes
            double sq = 0;
            double sqq = 0;
            double sx = 0;
            double sqx = 0;
            for (int i = 0; i < BLOCK; i++) {
                sq += q[i];
                sqq += (double) q[i] * q[i];
                sx += x[o + i];
                sqx += q[i] * (double) x[o + i];
            }
            double det = BLOCK * sqq - sq * sq;
            if (!(det > 0)) {
                break;
            }
            double d2 = (BLOCK * sqx - sq * sx) / det;
            double m2 = (sx - d2 * sq) / BLOCK;
            if (!(d2 > 0)) {
                break;
            }
            double err2 = assign(x, o, d2, m2, q2);
            if (!(err2 < err)) {
                break;
            }
            d = d2;
            m = m2;
            err = err2;
            System.arraycopy(q2, 0, q, 0, BLOCK);
        }
        out[0] = d;
        out[1] = m;
    }

    /** Nearest codes on the grid m + d · {0..15}; returns the squared error. */
    private static double assign(float[] x, int o, double d, double m, int[] q) {
        double err = 0;
        for (int i = 0; i < BLOCK; i++) {
            q[i] = clamp((int) Math.round((x[o + i] - m) / d), 0, 15);
            double e = x[o + i] - (m + d * q[i]);
            err += e * e;
        }
        return err;
    }

    @Override
    public void dequantizeBlocks(QuantizedTensor q, long row, int block, int count, float[] dst, int off) {
        long sub = q.rowOffset(1, row); // sub-block b's scale and offset sit at the same index of qscale and qmin
        long sup = q.rowOffset(3, row);
        for (int b = block; b < block + count; b++) {
            long s = sup + 4L * (b / SUPER);
            float dSuper = Float.float16ToFloat(q.plane(3).data().get(HALF, s));
            float mSuper = Float.float16ToFloat(q.plane(3).data().get(HALF, s + 2));
            float db = dSuper * (q.plane(1).data().get(ValueLayout.JAVA_BYTE, sub + b) & 0xff) / 255f;
            float mb = mSuper * q.plane(2).data().get(ValueLayout.JAVA_BYTE, sub + b) / 127f;
            unpackNibbles(q.plane(0).data(), q.rowOffset(0, row) + (long) b * (BLOCK / 2), db, mb, dst,
                    off + (b - block) * BLOCK);
        }
    }
}
