package dev.marble.runtime.nn;

import dev.marble.tensors.Tensor;

/**
 * Sees intermediate activations of a forward pass under their diffusers module names, e.g.
 * "decoder.up_blocks.1" or "time_embedding": channels-last ([B, H, W, C]) or, for vectors, [B, C].
 * Tests compare them with the golden debug tensors. The tensor is only valid during the call.
 */
@FunctionalInterface
public interface Probe {
    Probe NONE = (name, t) -> { };

    void see(String name, Tensor t);
}
