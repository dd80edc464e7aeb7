package dev.marble.runtime.nn;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Norm;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** torch.nn.GroupNorm (affine) on channels-last activations [B, H, W, C] or [B, L, C], optionally fused with SiLU. */
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
        return new GroupNormLayer(Linear.f32Copy(w.tensor("weight", channels), arena),
                Linear.f32Copy(w.tensor("bias", channels), arena), groups, eps);
    }

    public int channels() {
        return weight.size(0);
    }

    /** out = groupNorm(x), then SiLU when {@code silu}; out may be x. */
    public void forward(Tensor x, boolean silu, Tensor out) {
        Norm.groupNorm(x, weight, bias, groups, eps, silu, out);
    }

    /** The result in a tensor taken from {@code ws}; x is left to the caller. */
    public Tensor forward(Workspace ws, Tensor x, boolean silu) {
        Tensor out = ws.take(DType.F32, x.shape()); // same shape as x
        forward(x, silu, out);
        return out;
    }
}
