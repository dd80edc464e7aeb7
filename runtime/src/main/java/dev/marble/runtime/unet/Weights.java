package dev.marble.runtime.unet;

import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;

/** Load-time helpers for small weight tensors. */
final class Weights {
    private Weights() {
    }

    /**
     * An F32 copy in the model's arena. Small tensors (norm γ/β, biases) are widened at load and never
     * point into the mapped file, so the model stays valid after its source is closed.
     */
    static Tensor f32(Tensor t, Arena arena) {
        return Tensor.fromFloats(arena, t.toFloatArray(), t.shape());
    }
}
