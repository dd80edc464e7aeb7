package dev.marble.tensors.kernels;

import dev.marble.tensors.Simd;
import dev.marble.tensors.quant.Q4_0;
import dev.marble.tensors.quant.Q4_K;
import dev.marble.tensors.quant.Q8_0;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Panels of a block-quantized weight ({@link QuantFormat}): the same K-major panels of
 * {@link PanelDecoder#NR} columns as the dense formats, but still quantized, in exactly as many bytes
 * as the source planes (plus the zero columns of a ragged last panel). Per panel, per block of 32
 * K-rows, the codes come row-major, one byte per column, followed by the block's per-column scales:
 *
 * <pre>
 * q8_0   block = codes [32][NR] i8, d [NR] F16                                 34·NR bytes
 * q4_0   block = codes [16][NR] u8 (low nibble row r, high nibble row r+16),
 *                d [NR] F16                                                    18·NR bytes
 * q4_k   super-block of up to 8 blocks = D [NR] F16, M [NR] F16, then per block
 *                codes [16][NR] u8 as q4_0, sc [NR] u8, mn [NR] i8        (4 + 8·18)·NR bytes
 * </pre>
 *
 * So decoding rows [k0, k0 + kc) of a panel (k0 and kc multiples of 32: the GEMM cuts K blocks at
 * multiples of 32, and a quantized K is one) is a straight vector loop: load NR bytes of a row, widen
 * them to floats, scale (and offset), store. The arithmetic is that of the format's scalar reference
 * {@link QuantFormat#dequantizeBlocks}, operation for operation, so the results are bit-identical.
 *
 * <p>A conv weight [OC, IC, KH, KW] uses the same panels with K = IC, one per (output-channel block,
 * tap): {@link #pack} with {@code taps} = KH·KW takes column j of panel ocb·taps + t from quantized
 * row (ocb·NR + j)·taps + t.
 */
abstract sealed class QuantPanels extends PanelDecoder permits QuantPanels.Q8, QuantPanels.Q4, QuantPanels.Q4K {
    static final int BLOCK = QuantFormat.BLOCK;
    private static final VectorSpecies<Float> S = Simd.FLOAT;
    private static final int L = S.length();
    private static final VectorSpecies<Integer> IS = S.withLanes(int.class);
    /** Bytes of one float vector (at least 64 bits, the smallest byte vector), widened whole. */
    private static final VectorSpecies<Byte> BS = VectorSpecies.of(byte.class, VectorShape.forBitSize(Math.max(64, L * 8)));
    /**
     * Where the second L codes of a row are: L bytes further, or (128-bit floats, whose L = 4 bytes is
     * below the smallest byte vector) part 1 of the same 8-byte load.
     */
    private static final long STEP = BS.length() > L ? 0 : L;
    private static final int PART = BS.length() > L ? 1 : 0;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;

    static QuantPanels of(QuantFormat format) {
        return switch (format) {
            case Q8_0 _ -> Q8.INSTANCE;
            case Q4_0 _ -> Q4.INSTANCE;
            case Q4_K _ -> Q4K.INSTANCE;
        };
    }

    /** Bytes of one panel of k rows (k a multiple of 32). */
    abstract long panelBytes(int k);

    /**
     * Lays out one panel from {@code rows[plane]}: the source plane rows of its {@code cols} columns,
     * one after the other ({@code rowBytes[plane]} bytes each), into {@code out} (zeroed).
     */
    abstract void packPanel(byte[][] rows, int[] rowBytes, int k, int cols, byte[] out);

    /**
     * Packs panels [p0, p1) of {@code q}: column j of panel p = ocb·taps + t is quantized row
     * (ocb·NR + j)·taps + t (a Linear weight has taps = 1); columns past the last output are zero.
     * The rows are copied in bulk to the heap and transposed there, as the dense formats do.
     */
    final void pack(QuantizedTensor q, int taps, MemorySegment dst, int p0, int p1) {
        int k = q.k();
        long outs = q.rows() / taps;
        int planes = q.format().planes().size();
        byte[][] rows = new byte[planes][];
        int[] rowBytes = new int[planes];
        for (int i = 0; i < planes; i++) {
            rowBytes[i] = Math.toIntExact(q.rowOffset(i, 1));
            rows[i] = new byte[NR * rowBytes[i]];
        }
        long bytes = panelBytes(k);
        byte[] panel = new byte[Math.toIntExact(bytes)];
        for (int p = p0; p < p1; p++) {
            long ocb = p / taps;
            int t = p % taps;
            int cols = (int) Math.min(NR, outs - ocb * NR);
            for (int i = 0; i < planes; i++) {
                for (int j = 0; j < cols; j++) {
                    long row = (ocb * NR + j) * taps + t;
                    MemorySegment.copy(q.plane(i).data(), ValueLayout.JAVA_BYTE, q.rowOffset(i, row), rows[i],
                            j * rowBytes[i], rowBytes[i]);
                }
            }
            Arrays.fill(panel, (byte) 0);
            packPanel(rows, rowBytes, k, cols, panel);
            MemorySegment.copy(panel, 0, dst, ValueLayout.JAVA_BYTE, p * bytes, panel.length);
        }
    }

    /** Copies codes of a 4-bit block: out[o + r·NR + j] = byte r of the block in column j's row, r &lt; 16. */
    static void packNibbleBlock(byte[] codes, int rowBytes, int b, int cols, byte[] out, int o) {
        for (int j = 0; j < cols; j++) {
            int s = j * rowBytes + b * (BLOCK / 2);
            for (int r = 0; r < BLOCK / 2; r++) {
                out[o + r * NR + j] = codes[s + r];
            }
        }
    }

    /** Column j's F16 element e of a plane row → 2 bytes at out[o + 2j]. */
    static void packHalfColumn(byte[] plane, int rowBytes, int e, int cols, byte[] out, int o) {
        for (int j = 0; j < cols; j++) {
            out[o + 2 * j] = plane[j * rowBytes + 2 * e];
            out[o + 2 * j + 1] = plane[j * rowBytes + 2 * e + 1];
        }
    }

    /** Decoding needs whole blocks; the GEMM and conv only ever ask for those. */
    static void requireBlocks(int k0, int kc) {
        if (((k0 | kc) & (BLOCK - 1)) != 0) {
            throw new IllegalArgumentException("quantized panel rows [" + k0 + ", " + (k0 + kc) + ") not in blocks of " + BLOCK);
        }
    }

    /**
     * NR F16 values at byte {@code at} → floats in dst[o .. o + NR). The decoders park a block's scales
     * in the block's last destination rows, which it writes last, and load them as vectors first.
     */
    static void halfs(MemorySegment data, long at, float[] dst, int o) {
        for (int j = 0; j < NR; j++) {
            dst[o + j] = Float.float16ToFloat(data.get(HALF, at + 2L * j));
        }
    }

    // Vector helpers stay under the JIT's 35-byte always-inline size: a helper that is not inlined
    // returns its vector boxed on the heap, which made a decoder 10x slower.

    /** Bytes 0 .. L of the NR-byte row at {@code at}, sign-extended to floats. */
    static FloatVector floats0(MemorySegment data, long at) {
        return (FloatVector) ByteVector.fromMemorySegment(BS, data, at, LE).convertShape(VectorOperators.B2F, S, 0);
    }

    /** Bytes L .. NR of the row at {@code at}, sign-extended to floats. */
    static FloatVector floats1(MemorySegment data, long at) {
        return (FloatVector) ByteVector.fromMemorySegment(BS, data, at + STEP, LE).convertShape(VectorOperators.B2F, S, PART);
    }

    /** As {@link #floats0}, to ints. */
    static IntVector ints0(MemorySegment data, long at) {
        return (IntVector) ByteVector.fromMemorySegment(BS, data, at, LE).convertShape(VectorOperators.B2I, IS, 0);
    }

    /** As {@link #floats1}, to ints. */
    static IntVector ints1(MemorySegment data, long at) {
        return (IntVector) ByteVector.fromMemorySegment(BS, data, at + STEP, LE).convertShape(VectorOperators.B2I, IS, PART);
    }

    static FloatVector toFloats(IntVector v) {
        return (FloatVector) v.convert(VectorOperators.I2F, 0);
    }

    /** The low nibbles (the block's row r) of sign-extended code bytes, as floats. */
    static FloatVector low(IntVector v) {
        return toFloats(v.and(0xf));
    }

    /** The high nibbles (row r + 16). */
    static FloatVector high(IntVector v) {
        return toFloats(v.lanewise(VectorOperators.ASHR, 4).and(0xf));
    }

    /** q8_0: value = q · d. */
    static final class Q8 extends QuantPanels {
        static final Q8 INSTANCE = new Q8();
        private static final int BLOCK_BYTES = (BLOCK + 2) * NR;

        @Override
        long panelBytes(int k) {
            return (long) (k / BLOCK) * BLOCK_BYTES;
        }

        @Override
        void packPanel(byte[][] rows, int[] rowBytes, int k, int cols, byte[] out) {
            for (int b = 0; b < k / BLOCK; b++) {
                int o = b * BLOCK_BYTES;
                for (int j = 0; j < cols; j++) {
                    int s = j * rowBytes[0] + b * BLOCK;
                    for (int r = 0; r < BLOCK; r++) {
                        out[o + r * NR + j] = rows[0][s + r];
                    }
                }
                packHalfColumn(rows[1], rowBytes[1], b, cols, out, o + BLOCK * NR);
            }
        }

        @Override
        float get(MemorySegment data, int k, int kk, int nn) {
            int j = nn % NR;
            long at = nn / NR * panelBytes(k) + (long) (kk / BLOCK) * BLOCK_BYTES;
            float d = Float.float16ToFloat(data.get(HALF, at + BLOCK * NR + 2L * j));
            return data.get(ValueLayout.JAVA_BYTE, at + (long) (kk % BLOCK) * NR + j) * d;
        }

        @Override
        void decode(MemorySegment data, int k, int panel, int k0, int kc, float[] dst, int dstOff) {
            requireBlocks(k0, kc);
            long base = panel * panelBytes(k);
            for (int b = k0 / BLOCK, o = dstOff; b < (k0 + kc) / BLOCK; b++, o += BLOCK * NR) {
                block(data, base + (long) b * BLOCK_BYTES, dst, o);
            }
        }

        /** One block at byte {@code at} → dst[o .. o + 32·NR). */
        private static void block(MemorySegment data, long at, float[] dst, int o) {
            int park = o + (BLOCK - 1) * NR;
            halfs(data, at + BLOCK * NR, dst, park);
            FloatVector d0 = FloatVector.fromArray(S, dst, park);
            FloatVector d1 = FloatVector.fromArray(S, dst, park + L);
            for (int r = 0; r < BLOCK; r++) {
                long row = at + (long) r * NR;
                int to = o + r * NR;
                floats0(data, row).mul(d0).intoArray(dst, to);
                floats1(data, row).mul(d1).intoArray(dst, to + L);
            }
        }
    }

    /**
     * q4_0: value = code · d + (−8 · d). Both products are exact in float and so is their sum, so the
     * vector fma gives the reference's value.
     */
    static final class Q4 extends QuantPanels {
        static final Q4 INSTANCE = new Q4();
        private static final int BLOCK_BYTES = (BLOCK / 2 + 2) * NR;

        @Override
        long panelBytes(int k) {
            return (long) (k / BLOCK) * BLOCK_BYTES;
        }

        @Override
        void packPanel(byte[][] rows, int[] rowBytes, int k, int cols, byte[] out) {
            for (int b = 0; b < k / BLOCK; b++) {
                int o = b * BLOCK_BYTES;
                packNibbleBlock(rows[0], rowBytes[0], b, cols, out, o);
                packHalfColumn(rows[1], rowBytes[1], b, cols, out, o + BLOCK / 2 * NR);
            }
        }

        @Override
        float get(MemorySegment data, int k, int kk, int nn) {
            int j = nn % NR;
            int r = kk % BLOCK;
            long at = nn / NR * panelBytes(k) + (long) (kk / BLOCK) * BLOCK_BYTES;
            float d = Float.float16ToFloat(data.get(HALF, at + BLOCK / 2 * NR + 2L * j));
            int v = data.get(ValueLayout.JAVA_BYTE, at + (long) (r % (BLOCK / 2)) * NR + j);
            return (r < BLOCK / 2 ? v & 0xf : (v >> 4) & 0xf) * d + -8 * d;
        }

        @Override
        void decode(MemorySegment data, int k, int panel, int k0, int kc, float[] dst, int dstOff) {
            requireBlocks(k0, kc);
            long base = panel * panelBytes(k);
            for (int b = k0 / BLOCK, o = dstOff; b < (k0 + kc) / BLOCK; b++, o += BLOCK * NR) {
                block(data, base + (long) b * BLOCK_BYTES, dst, o);
            }
        }

        /** One block at byte {@code at} → dst[o .. o + 32·NR). */
        private static void block(MemorySegment data, long at, float[] dst, int o) {
            int half = BLOCK / 2 * NR;
            int park = o + (BLOCK - 1) * NR;
            halfs(data, at + half, dst, park);
            FloatVector d0 = FloatVector.fromArray(S, dst, park);
            FloatVector d1 = FloatVector.fromArray(S, dst, park + L);
            FloatVector m0 = d0.mul(-8f);
            FloatVector m1 = d1.mul(-8f);
            for (int r = 0; r < BLOCK / 2; r++) {
                long row = at + (long) r * NR;
                int to = o + r * NR;
                IntVector c0 = ints0(data, row);
                IntVector c1 = ints1(data, row);
                low(c0).fma(d0, m0).intoArray(dst, to);
                low(c1).fma(d1, m1).intoArray(dst, to + L);
                high(c0).fma(d0, m0).intoArray(dst, to + half);
                high(c1).fma(d1, m1).intoArray(dst, to + half + L);
            }
        }
    }

    /**
     * q4_k: d_b = D · sc / 255, m_b = M · mn / 127, value = code · d_b + m_b, each operation rounded as
     * in the reference (a vector division is as exact as a scalar one, and no fma is used).
     */
    static final class Q4K extends QuantPanels {
        static final Q4K INSTANCE = new Q4K();
        private static final int SUPER = Q4_K.SUPER;
        private static final int BLOCK_BYTES = (BLOCK / 2 + 2) * NR;
        private static final int HEADER_BYTES = 4 * NR;
        private static final int SUPER_BYTES = HEADER_BYTES + SUPER * BLOCK_BYTES;

        @Override
        long panelBytes(int k) {
            return (long) (k / BLOCK) * BLOCK_BYTES + (long) Q4_K.superBlocks(k) * HEADER_BYTES;
        }

        /** Byte offset of block b in its panel. */
        private static long blockOffset(int b) {
            return (long) (b / SUPER) * SUPER_BYTES + HEADER_BYTES + (long) (b % SUPER) * BLOCK_BYTES;
        }

        @Override
        void packPanel(byte[][] rows, int[] rowBytes, int k, int cols, byte[] out) {
            int nb = k / BLOCK;
            for (int s = 0; s < Q4_K.superBlocks(k); s++) {
                int h = s * SUPER_BYTES;
                packHalfColumn(rows[3], rowBytes[3], 2 * s, cols, out, h);
                packHalfColumn(rows[3], rowBytes[3], 2 * s + 1, cols, out, h + 2 * NR);
            }
            for (int b = 0; b < nb; b++) {
                int o = (int) blockOffset(b);
                packNibbleBlock(rows[0], rowBytes[0], b, cols, out, o);
                for (int j = 0; j < cols; j++) {
                    out[o + BLOCK / 2 * NR + j] = rows[1][j * rowBytes[1] + b];
                    out[o + (BLOCK / 2 + 1) * NR + j] = rows[2][j * rowBytes[2] + b];
                }
            }
        }

        @Override
        float get(MemorySegment data, int k, int kk, int nn) {
            int j = nn % NR;
            int b = kk / BLOCK;
            int r = kk % BLOCK;
            long base = nn / NR * panelBytes(k);
            long h = base + (long) (b / SUPER) * SUPER_BYTES;
            long at = base + blockOffset(b);
            float dSuper = Float.float16ToFloat(data.get(HALF, h + 2L * j));
            float mSuper = Float.float16ToFloat(data.get(HALF, h + 2L * NR + 2L * j));
            float db = dSuper * (data.get(ValueLayout.JAVA_BYTE, at + BLOCK / 2 * NR + j) & 0xff) / 255f;
            float mb = mSuper * data.get(ValueLayout.JAVA_BYTE, at + (BLOCK / 2 + 1) * NR + j) / 127f;
            int v = data.get(ValueLayout.JAVA_BYTE, at + (long) (r % (BLOCK / 2)) * NR + j);
            return (r < BLOCK / 2 ? v & 0xf : (v >> 4) & 0xf) * db + mb;
        }

        @Override
        void decode(MemorySegment data, int k, int panel, int k0, int kc, float[] dst, int dstOff) {
            requireBlocks(k0, kc);
            long base = panel * panelBytes(k);
            for (int b = k0 / BLOCK, o = dstOff; b < (k0 + kc) / BLOCK; b++, o += BLOCK * NR) {
                block(data, base + (long) (b / SUPER) * SUPER_BYTES, base + blockOffset(b), dst, o);
            }
        }

        /**
         * One block at byte {@code at} of the super-block at {@code h} → dst[o .. o + 32·NR). The
         * per-column d_b and m_b are computed in scalar code: few vector operations per compiled method
         * keep C2 below its inlining node budget (past it, vectors are boxed and the decode runs 10×
         * slower), and the vector loop needs that budget.
         */
        private static void block(MemorySegment data, long h, long at, float[] dst, int o) {
            int half = BLOCK / 2 * NR;
            int dRow = o + (BLOCK - 1) * NR;
            int mRow = dRow - NR;
            long sc = at + half;
            long mn = sc + NR;
            for (int j = 0; j < NR; j++) {
                float dSuper = Float.float16ToFloat(data.get(HALF, h + 2L * j));
                float mSuper = Float.float16ToFloat(data.get(HALF, h + 2L * NR + 2L * j));
                dst[dRow + j] = dSuper * (data.get(ValueLayout.JAVA_BYTE, sc + j) & 0xff) / 255f;
                dst[mRow + j] = mSuper * data.get(ValueLayout.JAVA_BYTE, mn + j) / 127f;
            }
            FloatVector d0 = FloatVector.fromArray(S, dst, dRow);
            FloatVector d1 = FloatVector.fromArray(S, dst, dRow + L);
            FloatVector m0 = FloatVector.fromArray(S, dst, mRow);
            FloatVector m1 = FloatVector.fromArray(S, dst, mRow + L);
            for (int r = 0; r < BLOCK / 2; r++) {
                long row = at + (long) r * NR;
                int to = o + r * NR;
                IntVector c0 = ints0(data, row);
                IntVector c1 = ints1(data, row);
                low(c0).mul(d0).add(m0).intoArray(dst, to);
                low(c1).mul(d1).add(m1).intoArray(dst, to + L);
                high(c0).mul(d0).add(m0).intoArray(dst, to + half);
                high(c1).mul(d1).add(m1).intoArray(dst, to + half + L);
            }
        }
    }
}
