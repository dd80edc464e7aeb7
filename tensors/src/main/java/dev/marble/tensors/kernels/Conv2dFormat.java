package dev.marble.tensors.kernels;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Numerics;
import dev.marble.tensors.Simd;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * How packed conv weights are stored, and how a run of them widens to F32: the plug-in point for
 * weight formats. The conv kernel only ever asks a format to {@link #decode} one slab (a run of the
 * packed order, see {@link ConvWeights}) into per-thread F32 scratch, so the storage stays in its
 * own dtype. One final class per format; the scalar decode lives here in the base class and is the
 * twin of each vector decode.
 *
 * <p>A quantized format (q8_0 / q4_0: 32 input channels of one output channel share one F16 scale)
 * fits this shape: in the packed order [.. kk][i][j] a run of 32 consecutive i for all NR values of
 * j is NR such blocks, and slabs are always whole multiples of 32 input channels.
 */
abstract sealed class Conv2dFormat permits Conv2dFormat.F32, Conv2dFormat.F16, Conv2dFormat.BF16 {
    private static final VectorSpecies<Float> FS = Simd.FLOAT;
    private static final int VL = FS.length();
    private static final VectorSpecies<Integer> IS = VectorSpecies.of(int.class, FS.vectorShape());
    /** Half as many bits as the float species: VL shorts that widen to VL ints. */
    private static final VectorSpecies<Short> SS = VectorSpecies.of(short.class, VectorShape.forBitSize(VL * 16));
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    static Conv2dFormat of(DType dt) {
        return switch (dt) {
            case F32 -> new F32();
            case F16 -> new F16();
            case BF16 -> new BF16();
            default -> throw new MarbleException("conv weights must be F32, F16 or BF16, got " + dt);
        };
    }

    abstract DType dtype();

    /** Bytes of one stored element (dense formats; a quantized format brings its own packing). */
    abstract int elementBytes();

    /** Packed element {@code elem} widened to float. */
    abstract float get(MemorySegment data, long elem);

    /** Widens packed elements [elem, elem + n) into dst[off, off + n); n is a multiple of the vector length. */
    abstract void decode(MemorySegment data, long elem, int n, float[] dst, int off);

    /** The scalar twin of {@link #decode}. */
    final void decodeScalar(MemorySegment data, long elem, int n, float[] dst, int off) {
        for (int i = 0; i < n; i++) {
            dst[off + i] = get(data, elem + i);
        }
    }

    /** VL shorts at byte offset {@code off}, sign-extended to VL ints. */
    private static IntVector loadShorts(MemorySegment data, long off) {
        return (IntVector) ShortVector.fromMemorySegment(SS, data, off, NATIVE).convertShape(VectorOperators.S2I, IS, 0);
    }

    static final class F32 extends Conv2dFormat {
        @Override
        DType dtype() {
            return DType.F32;
        }

        @Override
        int elementBytes() {
            return 4;
        }

        @Override
        float get(MemorySegment data, long elem) {
            return data.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, elem);
        }

        @Override
        void decode(MemorySegment data, long elem, int n, float[] dst, int off) {
            MemorySegment.copy(data, ValueLayout.JAVA_FLOAT_UNALIGNED, elem * 4, dst, off, n);
        }
    }

    /** bfloat16 is the top half of a float32: widening is a 16-bit shift. */
    static final class BF16 extends Conv2dFormat {
        @Override
        DType dtype() {
            return DType.BF16;
        }

        @Override
        int elementBytes() {
            return 2;
        }

        @Override
        float get(MemorySegment data, long elem) {
            return Numerics.bf16ToFloat(data.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, elem));
        }

        @Override
        void decode(MemorySegment data, long elem, int n, float[] dst, int off) {
            long base = elem * 2;
            for (int i = 0; i < n; i += VL) {
                loadShorts(data, base + 2L * i).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                        .intoArray(dst, off + i);
            }
        }
    }

    /**
     * IEEE binary16 (s.eeeee.mmmmmmmmmm, bias 15). The Vector API has no half-float conversion, so the
     * vector decode moves the bits: exponent and mantissa shift left 13 into float position and the
     * exponent is rebased by 127 − 15 = 112. Infinity/NaN (e = 31) get another +112 so their float
     * exponent is 255 (payload kept, as Float.float16ToFloat does). Zero/subnormals (e = 0) become
     * the normal float 2^-14·(1 + m/1024) and then 2^-14 is subtracted, leaving m·2^-24 exactly,
     * without ever computing on a float subnormal. Bit-exact with Float.float16ToFloat for every
     * half except NaNs, which stay NaN (with the payload; the hardware conversion also sets the quiet bit).
     */
    static final class F16 extends Conv2dFormat {
        private static final int EXP_SHIFTED = 0x7c00 << 13;  // the half exponent field, in float position
        private static final int REBIAS = (127 - 15) << 23;
        private static final int IMPLICIT_ONE = 1 << 23;
        private static final float TWO_POW_M14 = 0x1p-14f;

        @Override
        DType dtype() {
            return DType.F16;
        }

        @Override
        int elementBytes() {
            return 2;
        }

        @Override
        float get(MemorySegment data, long elem) {
            return Float.float16ToFloat(data.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, elem));
        }

        @Override
        void decode(MemorySegment data, long elem, int n, float[] dst, int off) {
            long base = elem * 2;
            for (int i = 0; i < n; i += VL) {
                IntVector h = loadShorts(data, base + 2L * i);
                IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
                IntVector o = h.and(0x7fff).lanewise(VectorOperators.LSHL, 13);
                IntVector e = o.and(EXP_SHIFTED);
                VectorMask<Integer> sub = e.eq(0);
                o = o.add(REBIAS).add(REBIAS, e.eq(EXP_SHIFTED)).add(IMPLICIT_ONE, sub);
                FloatVector f = o.reinterpretAsFloats();
                f = f.blend(f.sub(TWO_POW_M14), sub.cast(FS));
                f.reinterpretAsInts().or(sign).reinterpretAsFloats().intoArray(dst, off + i);
            }
        }
    }
}
