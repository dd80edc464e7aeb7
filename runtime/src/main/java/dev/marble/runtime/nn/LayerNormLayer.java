package dev.marble.runtime.nn;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Norm;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** torch.nn.LayerNorm (affine) over the last dimension of x [..., C]. */
public final class LayerNormLayer {
    private final Tensor weight; // [C] F32 (gamma)
    private final Tensor bias;   // [C] F32 (beta)
    private final float eps;

    private LayerNormLayer(Tensor weight, Tensor bias, float eps) {
        this.weight = weight;
        this.bias = bias;
        this.eps = eps;
    }

    /** Reads {@code weight} and {@code bias} [channels]. */
    public static LayerNormLayer load(WeightScope w, int channels, float eps, Arena arena) {
        return new LayerNormLayer(Linear.f32Copy(w.tensor("weight", channels), arena),
                Linear.f32Copy(w.tensor("bias", channels), arena), eps);
    }

    /** out = layerNorm(x); out may be x. */
    public void forward(Tensor x, Tensor out) {
        Norm.layerNorm(x, weight, bias, eps, out);
    }

    /** The result in a tensor taken from {@code ws}; x is left to the caller. */
    public Tensor forward(Workspace ws, Tensor x) {
        Tensor out = ws.take(DType.F32, x.shape()); // same shape as x
        forward(x, out);
        return out;
    }
}
