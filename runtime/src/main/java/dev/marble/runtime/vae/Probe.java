package dev.marble.runtime.vae;

import dev.marble.tensors.Tensor;

/**
 * Sees intermediate activations (channels-last) under their diffusers module names, e.g.
 * "decoder.up_blocks.1"; tests compare them with the golden debug tensors. The tensor is only valid
 * during the call.
 */
@FunctionalInterface
interface Probe {
    Probe NONE = (name, t) -> { };

    void see(String name, Tensor nhwc);
}
