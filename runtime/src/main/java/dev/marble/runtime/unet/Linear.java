package dev.marble.runtime.unet;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Gemm;
import dev.marble.tensors.kernels.PackedMatrix;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * torch.nn.Linear over the last dimension of a channels-last tensor: y [..., out] = x [..., in] · Wᵀ + b.
 * A 1×1 convolution on NHWC data is the same GEMM, so conv 1×1 weights [out, in, 1, 1] load here too.
 */
final class Linear {
    private final PackedMatrix weight; // [out, in] in the file's dtype
    private final Tensor bias; // [out] F32, or null

    private Linear(PackedMatrix weight, Tensor bias) {
        this.weight = weight;
        this.bias = bias;
    }

    /** {@code w.weight} [out, in] and, if {@code hasBias}, {@code w.bias} [out]. */
    static Linear load(WeightScope w, int in, int out, boolean hasBias, Arena arena) {
        return new Linear(PackedMatrix.ofLinear(w.tensor("weight", out, in), arena),
                hasBias ? Weights.f32(w.tensor("bias", out), arena) : null);
    }

    /** A 1×1 convolution: {@code w.weight} [out, in, 1, 1] and {@code w.bias} [out]. */
    static Linear loadConv1x1(WeightScope w, int in, int out, Arena arena) {
        return new Linear(PackedMatrix.ofLinear(w.tensor("weight", out, in, 1, 1), arena),
                Weights.f32(w.tensor("bias", out), arena));
    }

    int in() {
        return weight.k();
    }

    int out() {
        return weight.n();
    }

    /** y = x·Wᵀ + b into a new workspace tensor with the last dimension replaced by {@code out}. */
    Tensor forward(Workspace ws, Tensor x) {
        long[] shape = x.shape();
        shape[shape.length - 1] = out();
        Tensor y = ws.take(DType.F32, shape); // [..., out]
        Gemm.matmul(x, weight, bias, y);
        return y;
    }

    /** y = x·Wᵀ + b into {@code y}. */
    void forward(Tensor x, Tensor y) {
        Gemm.matmul(x, weight, bias, y);
    }
}
