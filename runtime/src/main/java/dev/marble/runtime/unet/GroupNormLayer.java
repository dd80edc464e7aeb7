package dev.marble.runtime.unet;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.kernels.Activation;
import dev.marble.tensors.kernels.Norm;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** torch.nn.GroupNorm (affine) on channels-last activations, optionally followed by an activation. */
final class GroupNormLayer {
    private final Tensor weight; // [C] F32 (γ)
    private final Tensor bias; // [C] F32 (β)
    private final int groups;
    private final float eps;

    private GroupNormLayer(Tensor weight, Tensor bias, int groups, float eps) {
        this.weight = weight;
        this.bias = bias;
        this.groups = groups;
        this.eps = eps;
    }

    static GroupNormLayer load(WeightScope w, int channels, int groups, float eps, Arena arena) {
        if (groups < 1 || channels % groups != 0) {
            throw new MarbleException(w.key("weight") + ": " + channels + " channels do not split into "
                    + groups + " groups (norm_num_groups)");
        }
        return new GroupNormLayer(Weights.f32(w.tensor("weight", channels), arena),
                Weights.f32(w.tensor("bias", channels), arena), groups, eps);
    }

    /** out = act(GroupNorm(x)); out may be x. SiLU is fused into the norm kernel's second pass. */
    void forward(Tensor x, Activation.Kind act, Tensor out) {
        boolean fuse = act == Activation.Kind.SILU;
        Norm.groupNorm(x, weight, bias, groups, eps, fuse, out);
        if (!fuse && act != Activation.Kind.IDENTITY) {
            Activation.apply(act, out, out);
        }
    }
}
