package dev.marble.tensors.kernels;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Numerics;
import dev.marble.tensors.Simd;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * One storage format of {@link PackedMatrix} panels: how a Linear weight is packed into K-major panels
 * of {@link PackedMatrix#NR} columns, and how rows of a panel are decoded to F32 for the GEMM
 * micro-kernel. The GEMM calls {@link #decode} once per panel and K block (never per element). The
 * dense formats (F32, F16, BF16) are {@link Dense}; the block-quantized ones are {@link QuantPanels}
 * (blocks of 32 along K; the GEMM's K blocks start at multiples of 32).
 */
abstract sealed class PanelDecoder permits PanelDecoder.Dense, QuantPanels {
    static final int NR = PackedMatrix.NR;
    private static final VectorSpecies<Float> S = Simd.FLOAT;
    private static final int L = S.length();
    /** Shorts of one float vector: loaded narrow, then widened (KERNELS.md: widen small vectors). */
    private static final VectorSpecies<Short> SS = VectorSpecies.of(short.class, VectorShape.forBitSize(L * 16));
    private static final VectorSpecies<Integer> IS = S.withLanes(int.class);
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    static Dense of(DType dtype) {
        return switch (dtype) {
            case F32 -> F32Panels.INSTANCE;
            case F16 -> F16Panels.INSTANCE;
            case BF16 -> BF16Panels.INSTANCE;
            default -> throw new MarbleException("GEMM weights must be F32, F16 or BF16, got " + dtype);
        };
    }

    /** B[kk, nn] as a float. */
    abstract float get(MemorySegment data, int k, int kk, int nn);

    /** Rows [k0, k0 + kc) of panel {@code panel} → dst[dstOff ..], kc × NR floats, K-major. */
    abstract void decode(MemorySegment data, int k, int panel, int k0, int kc, float[] dst, int dstOff);

    /** Element index of B[k0, panel·NR] in the packed layout. */
    static long index(int k, int panel, int k0) {
        return ((long) panel * k + k0) * NR;
    }

    /**
     * Packs 2-byte elements by their raw bits: column j of panel p is weight row p·NR + j; columns
     * past n are zero. The NR rows are copied in bulk to the heap and transposed there, which is
     * fast even before the JIT has compiled this (a model's first weights are packed interpreted).
     */
    static void packShorts(MemorySegment src, MemorySegment dst, int k, int n, int p0, int p1) {
        short[] rows = new short[NR * k];
        short[] panel = new short[k * NR];
        for (int p = p0; p < p1; p++) {
            int cols = Math.min(NR, n - p * NR);
            MemorySegment.copy(src, ValueLayout.JAVA_SHORT_UNALIGNED, (long) p * NR * k * 2, rows, 0, cols * k);
            Arrays.fill(rows, cols * k, NR * k, (short) 0);
            for (int kk = 0; kk < k; kk++) {
                for (int j = 0; j < NR; j++) {
                    panel[kk * NR + j] = rows[j * k + kk];
                }
            }
            MemorySegment.copy(panel, 0, dst, ValueLayout.JAVA_SHORT_UNALIGNED, index(k, p, 0) * 2, k * NR);
        }
    }

    /** {@link #packShorts} for 4-byte elements. */
    static void packInts(MemorySegment src, MemorySegment dst, int k, int n, int p0, int p1) {
        int[] rows = new int[NR * k];
        int[] panel = new int[k * NR];
        for (int p = p0; p < p1; p++) {
            int cols = Math.min(NR, n - p * NR);
            MemorySegment.copy(src, ValueLayout.JAVA_INT_UNALIGNED, (long) p * NR * k * 4, rows, 0, cols * k);
            Arrays.fill(rows, cols * k, NR * k, 0);
            for (int kk = 0; kk < k; kk++) {
                for (int j = 0; j < NR; j++) {
                    panel[kk * NR + j] = rows[j * k + kk];
                }
            }
            MemorySegment.copy(panel, 0, dst, ValueLayout.JAVA_INT_UNALIGNED, index(k, p, 0) * 4, k * NR);
        }
    }

    /** A format that stores each element in its own dtype: panels are [K][NR] elements. */
    abstract static sealed class Dense extends PanelDecoder permits F32Panels, F16Panels, BF16Panels {
        /**
         * Packs panels [p0, p1) of the row-major weight {@code src} [n, k] into {@code dst}, zero-padding
         * the columns past n.
         */
        abstract void pack(MemorySegment src, MemorySegment dst, int k, int n, int p0, int p1);
    }

    /** F32 panels: decoding is a copy. */
    static final class F32Panels extends Dense {
        static final F32Panels INSTANCE = new F32Panels();

        @Override
        void pack(MemorySegment src, MemorySegment dst, int k, int n, int p0, int p1) {
            packInts(src, dst, k, n, p0, p1);
        }

        @Override
        float get(MemorySegment data, int k, int kk, int nn) {
            return data.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, index(k, nn / NR, kk) + nn % NR);
        }

        @Override
        void decode(MemorySegment data, int k, int panel, int k0, int kc, float[] dst, int dstOff) {
            MemorySegment.copy(data, ValueLayout.JAVA_FLOAT_UNALIGNED, index(k, panel, k0) * 4, dst, dstOff, kc * NR);
        }
    }

    /**
     * IEEE half panels. The Vector API has no half type; this plain loop is what C2 turns into F16C
     * vcvtph2ps vectors (about 5× faster than widening the bits with Vector API integer ops).
     */
    static final class F16Panels extends Dense {
        static final F16Panels INSTANCE = new F16Panels();

        @Override
        void pack(MemorySegment src, MemorySegment dst, int k, int n, int p0, int p1) {
            packShorts(src, dst, k, n, p0, p1);
        }

        @Override
        float get(MemorySegment data, int k, int kk, int nn) {
            return Float.float16ToFloat(data.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, index(k, nn / NR, kk) + nn % NR));
        }

        @Override
        void decode(MemorySegment data, int k, int panel, int k0, int kc, float[] dst, int dstOff) {
            long src = index(k, panel, k0) * 2;
            int count = kc * NR;
            for (int i = 0; i < count; i++) {
                dst[dstOff + i] = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, src + 2L * i));
            }
        }
    }

    /** bfloat16 panels: the top half of a float, widened by a shift. */
    static final class BF16Panels extends Dense {
        static final BF16Panels INSTANCE = new BF16Panels();

        @Override
        void pack(MemorySegment src, MemorySegment dst, int k, int n, int p0, int p1) {
            packShorts(src, dst, k, n, p0, p1);
        }

        @Override
        float get(MemorySegment data, int k, int kk, int nn) {
            return Numerics.bf16ToFloat(data.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, index(k, nn / NR, kk) + nn % NR));
        }

        @Override
        void decode(MemorySegment data, int k, int panel, int k0, int kc, float[] dst, int dstOff) {
            long src = index(k, panel, k0) * 2;
            int count = kc * NR;
            for (int i = 0; i < count; i += L) {
                ((IntVector) ShortVector.fromMemorySegment(SS, data, src + 2L * i, LE)
                        .convertShape(VectorOperators.S2I, IS, 0))
                        .lanewise(VectorOperators.LSHL, 16)
                        .reinterpretAsFloats()
                        .intoArray(dst, dstOff + i);
            }
        }
    }
}
