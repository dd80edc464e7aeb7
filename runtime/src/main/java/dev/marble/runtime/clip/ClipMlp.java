package dev.marble.runtime.clip;

import dev.marble.runtime.nn.Linear;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** transformers CLIPMLP: fc1, activation (quick_gelu in OpenAI CLIP, gelu in OpenCLIP), fc2. */
final class ClipMlp {
    private final Linear fc1; // [I, D]
    private final Linear fc2; // [D, I]
    private final Activation.Kind act;

    private ClipMlp(Linear fc1, Linear fc2, Activation.Kind act) {
        this.fc1 = fc1;
        this.fc2 = fc2;
        this.act = act;
    }

    static ClipMlp load(ClipTextConfig c, WeightScope w, Arena arena) {
        return new ClipMlp(
                Linear.load(w.at("fc1"), c.hiddenSize(), c.intermediateSize(), true, arena),
                Linear.load(w.at("fc2"), c.intermediateSize(), c.hiddenSize(), true, arena),
                Activation.Kind.fromConfig(c.hiddenAct()));
    }

    /** x [B, L, D] → [B, L, D]; x is left to the caller. */
    Tensor forward(Workspace ws, Tensor x) {
        Tensor h = fc1.forward(ws, x); // [B, L, I]
        Activation.apply(act, h, h);
        Tensor out = fc2.forward(ws, h); // [B, L, D]
        ws.give(h);
        return out;
    }
}
