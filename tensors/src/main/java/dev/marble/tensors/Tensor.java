package dev.marble.tensors;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * A shape, a dtype and an off-heap {@link MemorySegment}. The segment starts at the view's first
 * element; strides (in elements) let reshape, slice and permute be views without a copy. The tensor
 * does not own its memory: the {@link Arena} (or {@link Workspace}) that allocated the segment does.
 */
public final class Tensor {
    /** Tensor data is aligned for whole-vector loads. */
    public static final long ALIGNMENT = 64;

    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    private final DType dtype;
    private final long[] shape;
    private final long[] strides;
    private final MemorySegment data;

    private Tensor(DType dtype, long[] shape, long[] strides, MemorySegment data) {
        this.dtype = dtype;
        this.shape = shape;
        this.strides = strides;
        this.data = data;
    }

    /** Allocates a zeroed contiguous tensor in {@code arena}. */
    public static Tensor allocate(Arena arena, DType dtype, long... shape) {
        long n = checkedNumel(shape);
        MemorySegment seg = arena.allocate(Math.max(1, n * dtype.byteSize()), ALIGNMENT);
        return new Tensor(dtype, shape.clone(), contiguousStrides(shape), seg);
    }

    /** A contiguous view over {@code data}, which must hold at least numel × dtype bytes. */
    public static Tensor wrap(MemorySegment data, DType dtype, long... shape) {
        long n = checkedNumel(shape);
        if (data.byteSize() < n * dtype.byteSize()) {
            throw new MarbleException("segment of " + data.byteSize() + " bytes is too small for "
                    + dtype + Arrays.toString(shape));
        }
        return new Tensor(dtype, shape.clone(), contiguousStrides(shape), data);
    }

    /** Copies {@code values} into a new F32 tensor. */
    public static Tensor fromFloats(Arena arena, float[] values, long... shape) {
        Tensor t = allocate(arena, DType.F32, shape);
        if (values.length != t.numel()) {
            throw new MarbleException(values.length + " values do not fill shape " + Arrays.toString(shape));
        }
        MemorySegment.copy(values, 0, t.data, F32, 0, values.length);
        return t;
    }

    public DType dtype() {
        return dtype;
    }

    public long[] shape() {
        return shape.clone();
    }

    public long[] strides() {
        return strides.clone();
    }

    public int rank() {
        return shape.length;
    }

    /** Size of dimension {@code d}; negative {@code d} counts from the end. */
    public long dim(int d) {
        return shape[d < 0 ? shape.length + d : d];
    }

    /** Size of dimension {@code d} as an int, for kernel arguments. */
    public int size(int d) {
        return Math.toIntExact(dim(d));
    }

    public long numel() {
        long n = 1;
        for (long s : shape) {
            n *= s;
        }
        return n;
    }

    /** The memory at the view's first element. */
    public MemorySegment data() {
        return data;
    }

    public long byteSize() {
        return numel() * dtype.byteSize();
    }

    public boolean isContiguous() {
        return Arrays.equals(strides, contiguousStrides(shape));
    }

    /** A view with a new shape; one dimension may be -1. Requires a contiguous tensor. */
    public Tensor reshape(long... newShape) {
        requireContiguous("reshape");
        long[] s = newShape.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < s.length; i++) {
            if (s[i] == -1) {
                if (infer >= 0) {
                    throw new MarbleException("reshape: more than one -1 in " + Arrays.toString(newShape));
                }
                infer = i;
            } else {
                known *= s[i];
            }
        }
        if (infer >= 0) {
            s[infer] = known == 0 ? 0 : numel() / known;
        }
        if (checkedNumel(s) != numel()) {
            throw new MarbleException("reshape: " + Arrays.toString(shape) + " cannot become " + Arrays.toString(newShape));
        }
        return new Tensor(dtype, s, contiguousStrides(s), data);
    }

    /** The view of indices [start, end) along {@code dim}. */
    public Tensor slice(int dim, long start, long end) {
        if (dim < 0) {
            dim += shape.length;
        }
        if (start < 0 || end > shape[dim] || start > end) {
            throw new MarbleException("slice [" + start + ", " + end + ") out of range for dim " + dim
                    + " of " + Arrays.toString(shape));
        }
        long[] s = shape.clone();
        s[dim] = end - start;
        long offset = start * strides[dim] * dtype.byteSize();
        return new Tensor(dtype, s, strides.clone(), data.asSlice(offset));
    }

    /** The view with dimensions reordered: new dim i is old dim {@code order[i]}. */
    public Tensor permute(int... order) {
        if (order.length != shape.length) {
            throw new MarbleException("permute: " + Arrays.toString(order) + " does not match rank " + shape.length);
        }
        long[] s = new long[order.length];
        long[] st = new long[order.length];
        boolean[] seen = new boolean[order.length];
        for (int i = 0; i < order.length; i++) {
            if (seen[order[i]]) {
                throw new MarbleException("permute: repeated dimension in " + Arrays.toString(order));
            }
            seen[order[i]] = true;
            s[i] = shape[order[i]];
            st[i] = strides[order[i]];
        }
        return new Tensor(dtype, s, st, data);
    }

    /** This tensor if contiguous, else a contiguous copy in {@code arena}. */
    public Tensor contiguous(Arena arena) {
        if (isContiguous()) {
            return this;
        }
        Tensor out = allocate(arena, dtype, shape);
        copyTo(out);
        return out;
    }

    /** Copies the elements (in logical order) into {@code dst}, which has the same shape and dtype. */
    public void copyTo(Tensor dst) {
        if (!Arrays.equals(shape, dst.shape) || dtype != dst.dtype) {
            throw new MarbleException("copy: " + dtype + Arrays.toString(shape) + " into "
                    + dst.dtype + Arrays.toString(dst.shape));
        }
        if (isContiguous() && dst.isContiguous()) {
            MemorySegment.copy(data, 0, dst.data, 0, byteSize());
            return;
        }
        long n = numel();
        long[] idx = new long[shape.length];
        int es = dtype.byteSize();
        for (long i = 0; i < n; i++) {
            MemorySegment.copy(data, offsetOf(idx) * es, dst.data, dst.offsetOf(idx) * es, es);
            increment(idx);
        }
    }

    /** Element at {@code idx} as a float (F32, F16, BF16, F64 and the integer types). Slow: tests and edges only. */
    public float getFloat(long... idx) {
        return readFloat(offsetOf(idx));
    }

    /** Sets an element of an F32, F16 or BF16 tensor. Slow: tests and edges only. */
    public void setFloat(float v, long... idx) {
        long off = offsetOf(idx);
        switch (dtype) {
            case F32 -> data.set(F32, off * 4, v);
            case F16 -> data.set(I16, off * 2, Float.floatToFloat16(v));
            case BF16 -> data.set(I16, off * 2, Numerics.floatToBf16(v));
            default -> throw new MarbleException("setFloat is not defined for " + dtype);
        }
    }

    /** All elements in logical order, widened to float. */
    public float[] toFloatArray() {
        long n = numel();
        if (n > Integer.MAX_VALUE - 8) {
            throw new MarbleException("tensor of " + n + " elements is too large for a float[]");
        }
        float[] out = new float[(int) n];
        if (dtype == DType.F32 && isContiguous()) {
            MemorySegment.copy(data, F32, 0, out, 0, out.length);
            return out;
        }
        long[] idx = new long[shape.length];
        for (int i = 0; i < out.length; i++) {
            out[i] = readFloat(offsetOf(idx));
            increment(idx);
        }
        return out;
    }

    /** A contiguous F32 copy (or this tensor, if already contiguous F32). */
    public Tensor toF32(Arena arena) {
        if (dtype == DType.F32) {
            return contiguous(arena);
        }
        return fromFloats(arena, toFloatArray(), shape);
    }

    private float readFloat(long off) {
        return switch (dtype) {
            case F32 -> data.get(F32, off * 4);
            case F16 -> Float.float16ToFloat(data.get(I16, off * 2));
            case BF16 -> Numerics.bf16ToFloat(data.get(I16, off * 2));
            case F64 -> (float) data.get(ValueLayout.JAVA_DOUBLE_UNALIGNED, off * 8);
            case I64 -> data.get(ValueLayout.JAVA_LONG_UNALIGNED, off * 8);
            case I32 -> data.get(ValueLayout.JAVA_INT_UNALIGNED, off * 4);
            case I16 -> data.get(I16, off * 2);
            case I8 -> data.get(ValueLayout.JAVA_BYTE, off);
            case U8, BOOL -> data.get(ValueLayout.JAVA_BYTE, off) & 0xff;
            case F8_E4M3 -> Numerics.f8e4m3ToFloat(data.get(ValueLayout.JAVA_BYTE, off));
            case F8_E5M2 -> Numerics.f8e5m2ToFloat(data.get(ValueLayout.JAVA_BYTE, off));
        };
    }

    private long offsetOf(long[] idx) {
        if (idx.length != shape.length) {
            throw new MarbleException("index of rank " + idx.length + " for tensor of rank " + shape.length);
        }
        long off = 0;
        for (int i = 0; i < idx.length; i++) {
            if (idx[i] < 0 || idx[i] >= shape[i]) {
                throw new MarbleException("index " + Arrays.toString(idx) + " out of bounds for " + Arrays.toString(shape));
            }
            off += idx[i] * strides[i];
        }
        return off;
    }

    private void increment(long[] idx) {
        for (int d = idx.length - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) {
                return;
            }
            idx[d] = 0;
        }
    }

    private void requireContiguous(String op) {
        if (!isContiguous()) {
            throw new MarbleException(op + " needs a contiguous tensor, got strides " + Arrays.toString(strides));
        }
    }

    static long[] contiguousStrides(long[] shape) {
        long[] st = new long[shape.length];
        long s = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            st[i] = s;
            s *= shape[i];
        }
        return st;
    }

    private static long checkedNumel(long[] shape) {
        long n = 1;
        for (long s : shape) {
            if (s < 0) {
                throw new MarbleException("negative dimension in shape " + Arrays.toString(shape));
            }
            n = Math.multiplyExact(n, s);
        }
        return n;
    }

    @Override
    public String toString() {
        return dtype + Arrays.toString(shape);
    }
}
