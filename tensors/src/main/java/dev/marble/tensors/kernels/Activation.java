package dev.marble.tensors.kernels;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;

/** Element-wise activations and row softmax on contiguous F32 tensors; out may be x. */
public final class Activation {
    /** The activation functions the models name in their configs. */
    public enum Kind {
        SILU, GELU, GELU_TANH, QUICK_GELU, IDENTITY;

        /** Maps a config name (transformers' hidden_act, diffusers' act_fn). */
        public static Kind fromConfig(String name) {
            return switch (name) {
                case "silu", "swish" -> SILU;
                case "gelu" -> GELU;
                case "gelu_new", "gelu_pytorch_tanh", "gelu_fast" -> GELU_TANH;
                case "quick_gelu" -> QUICK_GELU;
                default -> throw new MarbleException("unsupported activation '" + name + "'");
            };
        }
    }

    private Activation() {
    }

    public static void apply(Kind kind, Tensor x, Tensor out) {
        Checks.f32("activation input", x.reshape(-1), x.numel());
        Checks.f32("activation output", out.reshape(-1), x.numel());
        if (kind == Kind.IDENTITY) {
            if (x.data().address() != out.data().address()) {
                x.copyTo(out.reshape(x.shape()));
            }
            return;
        }
        if (Simd.ENABLED) {
            ActivationSimd.apply(kind, x, out);
        } else {
            ActivationScalar.apply(kind, x, out);
        }
    }

    /**
     * diffusers GEGLU after its projection: x [M, 2N] holds [hidden | gate]; out [M, N] =
     * hidden · gelu(gate), with the erf GELU.
     */
    public static void geglu(Tensor x, Tensor out) {
        int n2 = x.size(-1);
        if (x.numel() == 0) {
            Checks.f32("geglu output", out.reshape(-1), 0);
            return;
        }
        if (n2 % 2 != 0) {
            throw new MarbleException("geglu: last dimension " + n2 + " is odd");
        }
        int m = Math.toIntExact(x.numel() / n2);
        Checks.f32("geglu input", x.reshape(m, n2), m, n2);
        Checks.f32("geglu output", out.reshape(m, -1), m, n2 / 2);
        if (Simd.ENABLED) {
            ActivationSimd.geglu(x, out, m, n2 / 2);
        } else {
            ActivationScalar.geglu(x, out, m, n2 / 2);
        }
    }

    /** Softmax over the last dimension. */
    public static void softmax(Tensor x, Tensor out) {
        int n = x.size(-1);
        if (x.numel() == 0) {
            Checks.f32("softmax output", out.reshape(-1), 0);
            return;
        }
        int m = Math.toIntExact(x.numel() / n);
        Checks.f32("softmax input", x.reshape(m, n), m, n);
        Checks.f32("softmax output", out.reshape(m, n), m, n);
        if (Simd.ENABLED) {
            ActivationSimd.softmax(x, out, m, n);
        } else {
            ActivationScalar.softmax(x, out, m, n);
        }
    }
}
