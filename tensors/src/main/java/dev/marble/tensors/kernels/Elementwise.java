package dev.marble.tensors.kernels;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.util.Arrays;

/** Element-wise arithmetic with broadcasting, and the data-movement ops of the UNet. All F32. */
public final class Elementwise {
    /** Binary operators. */
    public enum Op {
        ADD, MUL
    }

    private Elementwise() {
    }

    /** out = a + b, where b broadcasts against a (NumPy rules, right-aligned). out may be a. */
    public static void add(Tensor a, Tensor b, Tensor out) {
        binary(Op.ADD, a, b, out);
    }

    /** out = a · b, where b broadcasts against a. out may be a. */
    public static void mul(Tensor a, Tensor b, Tensor out) {
        binary(Op.MUL, a, b, out);
    }

    /** out = a · s + c (affine map with scalars). out may be a. */
    public static void scale(Tensor a, float s, float c, Tensor out) {
        Checks.f32("scale input", a.reshape(-1), a.numel());
        Checks.f32("scale output", out.reshape(-1), a.numel());
        if (Simd.ENABLED) {
            ElementwiseSimd.scale(a, s, c, out);
        } else {
            ElementwiseScalar.scale(a, s, c, out);
        }
    }

    static void binary(Op op, Tensor a, Tensor b, Tensor out) {
        long[] as = a.shape();
        long[] bs = b.shape();
        if (bs.length > as.length) {
            throw new MarbleException(op + ": " + b + " does not broadcast to " + a);
        }
        long[] bstrides = new long[as.length];
        long stride = 1;
        for (int i = bs.length - 1; i >= 0; i--) {
            int ai = i + as.length - bs.length;
            if (bs[i] == as[ai]) {
                bstrides[ai] = stride;
            } else if (bs[i] != 1) {
                throw new MarbleException(op + ": " + b + " does not broadcast to " + a);
            }
            stride *= bs[i];
        }
        Checks.f32(op + " a", a, as);
        Checks.f32(op + " b", b, bs);
        Checks.f32(op + " out", out, as);
        if (Simd.ENABLED) {
            ElementwiseSimd.binary(op, a, b, bstrides, out);
        } else {
            ElementwiseScalar.binary(op, a, b, bstrides, out);
        }
    }

    /** Nearest-neighbour 2× upsampling: x [B, H, W, C] → out [B, 2H, 2W, C]. */
    public static void upsampleNearest2x(Tensor x, Tensor out) {
        if (x.rank() != 4) {
            throw new MarbleException("upsample: expected [B, H, W, C], got " + x);
        }
        Checks.f32("upsample input", x, x.shape());
        Checks.f32("upsample output", out, x.dim(0), 2 * x.dim(1), 2 * x.dim(2), x.dim(3));
        if (Simd.ENABLED) {
            ElementwiseSimd.upsampleNearest2x(x, out);
        } else {
            ElementwiseScalar.upsampleNearest2x(x, out);
        }
    }

    /** Channel concatenation: a [..., C1] and b [..., C2] → out [..., C1 + C2]. */
    public static void concatChannels(Tensor a, Tensor b, Tensor out) {
        long[] as = a.shape();
        long[] bs = b.shape();
        long[] os = as.clone();
        os[os.length - 1] += bs[bs.length - 1];
        bs[bs.length - 1] = as[as.length - 1];
        if (!Arrays.equals(as, bs)) {
            throw new MarbleException("concat: " + a + " and " + b + " differ outside the channel dimension");
        }
        Checks.f32("concat a", a, a.shape());
        Checks.f32("concat b", b, b.shape());
        Checks.f32("concat out", out, os);
        ElementwiseScalar.concatChannels(a, b, out);
    }
}
