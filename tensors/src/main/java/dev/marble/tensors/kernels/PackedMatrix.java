package dev.marble.tensors.kernels;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Numerics;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The weight operand B [K, N] of a GEMM, kept in its storage dtype (F32, F16 or BF16) so that a
 * half-precision model is never expanded to F32. Built once at load from a PyTorch Linear weight
 * [N, K] (out features × in features).
 */
public final class PackedMatrix {
    private final DType dtype;
    private final int k;
    private final int n;
    /** Row-major [N, K] copy of the weight in its own dtype. */
    private final MemorySegment data;

    private PackedMatrix(DType dtype, int k, int n, MemorySegment data) {
        this.dtype = dtype;
        this.k = k;
        this.n = n;
        this.data = data;
    }

    /** Packs a Linear weight [N, K] (or any [N, ...] tensor, flattened to [N, K]) into {@code arena}. */
    public static PackedMatrix ofLinear(Tensor weight, Arena arena) {
        DType dt = weight.dtype();
        if (dt != DType.F32 && dt != DType.F16 && dt != DType.BF16) {
            throw new MarbleException("GEMM weights must be F32, F16 or BF16, got " + dt);
        }
        int n = weight.size(0);
        int k = Math.toIntExact(weight.numel() / Math.max(1, n));
        Tensor src = weight.contiguous(arena);
        MemorySegment copy = arena.allocate(src.byteSize(), Tensor.ALIGNMENT);
        MemorySegment.copy(src.data(), 0, copy, 0, src.byteSize());
        return new PackedMatrix(dt, k, n, copy);
    }

    public DType dtype() {
        return dtype;
    }

    /** Inner dimension (input features). */
    public int k() {
        return k;
    }

    /** Output dimension (output features). */
    public int n() {
        return n;
    }

    /** Bytes held. */
    public long byteSize() {
        return data.byteSize();
    }

    /** B[k, n] widened to float: the scalar path and tests. */
    public float get(int kk, int nn) {
        long i = (long) nn * k + kk;
        return switch (dtype) {
            case F32 -> data.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
            case F16 -> Float.float16ToFloat(data.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i));
            case BF16 -> Numerics.bf16ToFloat(data.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i));
            default -> throw new IllegalStateException(dtype.toString());
        };
    }
}
