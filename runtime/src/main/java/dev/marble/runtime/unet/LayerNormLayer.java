package dev.marble.runtime.unet;

import dev.marble.tensors.Tensor;
import dev.marble.tensors.kernels.Norm;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** torch.nn.LayerNorm (affine) over the last dimension. */
final class LayerNormLayer {
    private final Tensor weight; // [C] F32 (γ)
    private final Tensor bias; // [C] F32 (β)
    private final float eps;

    private LayerNormLayer(Tensor weight, Tensor bias, float eps) {
        this.weight = weight;
        this.bias = bias;
        this.eps = eps;
    }

    static LayerNormLayer load(WeightScope w, int channels, float eps, Arena arena) {
        return new LayerNormLayer(Weights.f32(w.tensor("weight", channels), arena),
                Weights.f32(w.tensor("bias", channels), arena), eps);
    }

    /** out = LayerNorm(x); out may be x. */
    void forward(Tensor x, Tensor out) {
        Norm.layerNorm(x, weight, bias, eps, out);
    }
}
