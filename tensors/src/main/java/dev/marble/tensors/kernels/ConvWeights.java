package dev.marble.tensors.kernels;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Numerics;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A conv2d weight [OC, IC, KH, KW] in its storage dtype (F32, F16 or BF16), plus an F32 bias [OC],
 * packed once at load.
 */
public final class ConvWeights {
    private final DType dtype;
    private final int oc;
    private final int ic;
    private final int kh;
    private final int kw;
    /** [OC, IC, KH, KW] row-major copy in its own dtype. */
    private final MemorySegment data;
    /** [OC] F32, or null. */
    private final float[] bias;

    private ConvWeights(DType dtype, int oc, int ic, int kh, int kw, MemorySegment data, float[] bias) {
        this.dtype = dtype;
        this.oc = oc;
        this.ic = ic;
        this.kh = kh;
        this.kw = kw;
        this.data = data;
        this.bias = bias;
    }

    /** Packs weight [OC, IC, KH, KW] and bias [OC] (may be null) into {@code arena}. */
    public static ConvWeights pack(Tensor weight, Tensor bias, Arena arena) {
        DType dt = weight.dtype();
        if (dt != DType.F32 && dt != DType.F16 && dt != DType.BF16) {
            throw new MarbleException("conv weights must be F32, F16 or BF16, got " + dt);
        }
        if (weight.rank() != 4) {
            throw new MarbleException("conv weight must be [OC, IC, KH, KW], got " + weight);
        }
        int oc = weight.size(0);
        if (bias != null && (bias.rank() != 1 || bias.dim(0) != oc)) {
            throw new MarbleException("conv bias must be [" + oc + "], got " + bias);
        }
        Tensor src = weight.contiguous(arena);
        MemorySegment copy = arena.allocate(src.byteSize(), Tensor.ALIGNMENT);
        MemorySegment.copy(src.data(), 0, copy, 0, src.byteSize());
        return new ConvWeights(dt, oc, weight.size(1), weight.size(2), weight.size(3), copy,
                bias == null ? null : bias.toFloatArray());
    }

    public DType dtype() {
        return dtype;
    }

    public int outChannels() {
        return oc;
    }

    public int inChannels() {
        return ic;
    }

    public int kernelHeight() {
        return kh;
    }

    public int kernelWidth() {
        return kw;
    }

    /** Bias for output channel o, 0 when there is none. */
    public float bias(int o) {
        return bias == null ? 0f : bias[o];
    }

    public boolean hasBias() {
        return bias != null;
    }

    /** W[o, i, y, x] widened to float: the scalar path and tests. */
    public float get(int o, int i, int y, int x) {
        long idx = (((long) o * ic + i) * kh + y) * kw + x;
        return switch (dtype) {
            case F32 -> data.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, idx);
            case F16 -> Float.float16ToFloat(data.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, idx));
            case BF16 -> Numerics.bf16ToFloat(data.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, idx));
            default -> throw new IllegalStateException(dtype.toString());
        };
    }
}
