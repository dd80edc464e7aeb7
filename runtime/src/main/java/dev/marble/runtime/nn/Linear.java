package dev.marble.runtime.nn;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Gemm;
import dev.marble.tensors.kernels.PackedMatrix;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.util.Arrays;

/**
 * torch.nn.Linear over the last dimension: x [..., in] → x · Wᵀ + b [..., out]. Also serves a 1×1
 * convolution on channels-last activations, which is the same GEMM ({@link #loadConv1x1}).
 */
public final class Linear {
    private final PackedMatrix weight; // [out, in] in its file dtype or quantization
    private final Tensor bias;         // [out] F32, or null

    private Linear(PackedMatrix weight, Tensor bias) {
        this.weight = weight;
        this.bias = bias;
    }

    /**
     * Reads {@code weight} [out, in] and, when {@code hasBias}, {@code bias} [out] from scope {@code w}.
     * A 1×1-conv-shaped weight [out, in, 1, 1] is accepted too: older checkpoints store attention
     * projections that way, and it is the same matrix. A quantized weight stays quantized.
     */
    public static Linear load(WeightScope w, int in, int out, boolean hasBias, Arena arena) {
        QuantizedTensor q = w.quantized("weight");
        Tensor wt = q == null ? w.tensor("weight") : null;
        long[] s = q != null ? q.shape() : wt.shape();
        boolean ok = Arrays.equals(s, new long[] {out, in}) || Arrays.equals(s, new long[] {out, in, 1, 1});
        if (!ok) {
            throw new MarbleException(w.source().describe() + ": tensor '" + w.key("weight") + "' has shape "
                    + Arrays.toString(s) + ", expected [" + out + ", " + in + "]");
        }
        return of(w, q != null ? PackedMatrix.ofQuantized(q, arena) : PackedMatrix.ofLinear(wt, arena), out, hasBias,
                arena);
    }

    /**
     * As {@link #load}, but {@code weight} must be exactly [out, in]: for a model that checks each
     * weight against its config, where a conv-shaped tensor means config and weights disagree.
     */
    public static Linear loadMatrix(WeightScope w, int in, int out, boolean hasBias, Arena arena) {
        return of(w, pack(w, arena, out, in), out, hasBias, arena);
    }

    /**
     * A 1×1 torch.nn.Conv2d: {@code weight} exactly [out, in, 1, 1] and {@code bias} [out]. On
     * channels-last activations it is this same GEMM over the pixels.
     */
    public static Linear loadConv1x1(WeightScope w, int in, int out, Arena arena) {
        return of(w, pack(w, arena, out, in, 1, 1), out, true, arena);
    }

    /** {@code weight} of exactly {@code shape}, quantized or plain, packed for the GEMM. */
    private static PackedMatrix pack(WeightScope w, Arena arena, long... shape) {
        QuantizedTensor q = w.quantized("weight", shape);
        return q != null ? PackedMatrix.ofQuantized(q, arena) : PackedMatrix.ofLinear(w.tensor("weight", shape), arena);
    }

    private static Linear of(WeightScope w, PackedMatrix weight, int out, boolean hasBias, Arena arena) {
        // Copied to F32 so the layer outlives the file mapping.
        Tensor b = hasBias ? f32Copy(w.tensor("bias", out), arena) : null;
        return new Linear(weight, b);
    }

    /**
     * A contiguous F32 copy of a small tensor (bias, norm gamma/beta) in the model's arena: always a
     * copy, so layers do not depend on the file mapping staying open.
     */
    static Tensor f32Copy(Tensor t, Arena arena) {
        return Tensor.fromFloats(arena, t.toFloatArray(), t.shape());
    }

    public int inFeatures() {
        return weight.k();
    }

    public int outFeatures() {
        return weight.n();
    }

    /** out [..., out] = x [..., in] · Wᵀ + b. */
    public void forward(Tensor x, Tensor out) {
        Gemm.matmul(x, weight, bias, out);
    }

    /** The result in a tensor taken from {@code ws}; x is left to the caller. */
    public Tensor forward(Workspace ws, Tensor x) {
        long[] shape = x.shape();
        shape[shape.length - 1] = weight.n();
        Tensor out = ws.take(DType.F32, shape); // [..., out]
        forward(x, out);
        return out;
    }
}
