package dev.marble.runtime.unet;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * diffusers {@code FeedForward} with activation "geglu" (mult 4): net.0 = GEGLU (proj D → 2F, then
 * hidden·gelu(gate) with [hidden | gate] the two halves), net.1 = dropout, net.2 = Linear F → D.
 */
final class FeedForward {
    private static final int MULT = 4; // diffusers FeedForward default, as BasicTransformerBlock builds it

    private final Linear proj; // net.0.proj: [2F, D]
    private final Linear out; // net.2: [D, F]

    private FeedForward(Linear proj, Linear out) {
        this.proj = proj;
        this.out = out;
    }

    static FeedForward load(WeightScope w, int dim, Arena arena) {
        int inner = dim * MULT;
        return new FeedForward(Linear.load(w.at("net").at(0).at("proj"), dim, 2 * inner, true, arena),
                Linear.load(w.at("net").at(2), inner, dim, true, arena));
    }

    /** x [B, L, D] → a new workspace tensor [B, L, D]. */
    Tensor forward(Workspace ws, Tensor x) {
        Tensor p = proj.forward(ws, x); // [B, L, 2F]
        long[] shape = p.shape();
        shape[shape.length - 1] /= 2;
        Tensor g = ws.take(DType.F32, shape); // [B, L, F]
        Activation.geglu(p, g);
        ws.give(p);
        Tensor y = out.forward(ws, g); // [B, L, D]
        ws.give(g);
        return y;
    }
}
