package dev.marble.runtime.nn;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.tensors.kernels.Norm;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * torch.nn.GroupNorm (affine) on channels-last activations [B, H, W, C] or [B, L, C], optionally
 * followed by an activation.
 */
public final class GroupNormLayer {
    private final Tensor weight; // [C] F32 (gamma)
    private final Tensor bias;   // [C] F32 (beta)
    private final int groups;
    private final float eps;

    private GroupNormLayer(Tensor weight, Tensor bias, int groups, float eps) {
        this.weight = weight;
        this.bias = bias;
        this.groups = groups;
        this.eps = eps;
    }

    /** Reads {@code weight} and {@code bias} [channels]. */
    public static GroupNormLayer load(WeightScope w, int channels, int groups, float eps, Arena arena) {
        if (groups < 1 || channels % groups != 0) {
            throw new MarbleException(w.key("weight") + ": " + channels + " channels do not split into "
                    + groups + " groups (norm_num_groups)");
        }
        return new GroupNormLayer(Linear.f32Copy(w.tensor("weight", channels), arena),
                Linear.f32Copy(w.tensor("bias", channels), arena), groups, eps);
    }

    public int channels() {
        return weight.size(0);
    }

    /** out = act(groupNorm(x)); out may be x. SiLU is fused into the norm kernel's second pass. */
    public void forward(Tensor x, Activation.Kind act, Tensor out) {
        boolean fused = act == Activation.Kind.SILU;
        Norm.groupNorm(x, weight, bias, groups, eps, fused, out);
        if (!fused && act != Activation.Kind.IDENTITY) {
            Activation.apply(act, out, out);
        }
    }

    /** The result in a tensor taken from {@code ws}; x is left to the caller. */
    public Tensor forward(Workspace ws, Tensor x, Activation.Kind act) {
        Tensor out = ws.take(DType.F32, x.shape()); // same shape as x
        forward(x, act, out);
        return out;
    }
}
