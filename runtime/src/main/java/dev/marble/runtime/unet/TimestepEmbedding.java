package dev.marble.runtime.unet;

import dev.marble.runtime.nn.Linear;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** diffusers {@code TimestepEmbedding}: linear_1 → act → linear_2 (→ post_act). */
final class TimestepEmbedding {
    private final Linear linear_1; // [T, C0]
    private final Linear linear_2; // [T, T]
    private final Activation.Kind act;
    private final Activation.Kind postAct;

    private TimestepEmbedding(Linear linear_1, Linear linear_2, Activation.Kind act, Activation.Kind postAct) {
        this.linear_1 = linear_1;
        this.linear_2 = linear_2;
        this.act = act;
        this.postAct = postAct;
    }

    static TimestepEmbedding load(WeightScope w, int in, int timeDim, Activation.Kind act, Activation.Kind postAct,
            Arena arena) {
        return new TimestepEmbedding(Linear.loadMatrix(w.at("linear_1"), in, timeDim, true, arena),
                Linear.loadMatrix(w.at("linear_2"), timeDim, timeDim, true, arena), act, postAct);
    }

    /** t_emb [B, C0] → a new workspace tensor [B, T]. */
    Tensor forward(Workspace ws, Tensor tEmb) {
        Tensor h = linear_1.forward(ws, tEmb); // [B, T]
        Activation.apply(act, h, h);
        Tensor out = linear_2.forward(ws, h); // [B, T]
        ws.give(h);
        Activation.apply(postAct, out, out);
        return out;
    }
}
