package dev.marble.tensors.kernels;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;

/**
 * 2-D convolution over channels-last activations: x [B, H, W, IC] → out [B, OH, OW, OC], with
 * OH = (H + padTop + padBottom − KH) / stride + 1 (likewise OW). Zero padding. Runs the vector kernel
 * ({@link Conv2dSimd}, an implicit GEMM) when {@link Simd#ENABLED}, else the scalar twin; 3×3
 * stride-1 convolutions large enough to profit take the Winograd path ({@link Conv2dWinograd})
 * unless {@code -Dmarble.conv.winograd=false}. {@link Flops} counts direct-convolution FLOPs on
 * both paths, so GFLOP/s figures stay comparable.
 */
public final class Conv2d {
    /** Whether 3×3 stride-1 convolutions may take the Winograd path ({@code marble.conv.winograd}, default true). */
    static final boolean WINOGRAD = Boolean.parseBoolean(System.getProperty("marble.conv.winograd", "true"));

    private Conv2d() {
    }

    /** Symmetric padding on all sides. */
    public static void forward(Tensor x, ConvWeights w, int stride, int pad, Tensor out) {
        forward(x, w, stride, pad, pad, pad, pad, out);
    }

    public static void forward(Tensor x, ConvWeights w, int stride, int padTop, int padLeft, int padBottom,
            int padRight, Tensor out) {
        if (x.rank() != 4 || x.dim(3) != w.inChannels()) {
            throw new MarbleException("conv2d: input " + x + " is not [B, H, W, " + w.inChannels() + "]");
        }
        if (stride < 1) {
            throw new MarbleException("conv2d: stride must be positive, got " + stride);
        }
        if (padTop < 0 || padLeft < 0 || padBottom < 0 || padRight < 0) {
            throw new MarbleException("conv2d: padding must not be negative, got " + padTop + ", " + padLeft + ", "
                    + padBottom + ", " + padRight);
        }
        int b = x.size(0);
        int h = x.size(1);
        int wd = x.size(2);
        int oh = outSize(h, w.kernelHeight(), stride, padTop + padBottom);
        int ow = outSize(wd, w.kernelWidth(), stride, padLeft + padRight);
        Checks.f32("conv2d input", x, b, h, wd, w.inChannels());
        Checks.f32("conv2d output", out, b, oh, ow, w.outChannels());
        if (x.data().asSlice(0, x.byteSize()).asOverlappingSlice(out.data().asSlice(0, out.byteSize())).isPresent()) {
            throw new MarbleException("conv2d: output " + out + " overlaps input " + x + " (no in-place convolution)");
        }
        Flops.add(2L * b * oh * ow * w.outChannels() * w.inChannels() * w.kernelHeight() * w.kernelWidth());
        if (usesWinograd(x, w, stride, padTop, padLeft, padBottom, padRight)) {
            Conv2dWinograd.forward(x, w, padTop, padLeft, out);
        } else if (Simd.ENABLED) {
            Conv2dSimd.forward(x, w, stride, padTop, padLeft, out);
        } else {
            Conv2dScalar.forward(x, w, stride, padTop, padLeft, out);
        }
    }

    /**
     * Whether {@link #forward} takes the Winograd path for these arguments (already validated): 3×3,
     * stride 1, vector kernels on, and a shape where it measured faster than the direct path.
     */
    static boolean usesWinograd(Tensor x, ConvWeights w, int stride, int padTop, int padLeft, int padBottom,
            int padRight) {
        if (!WINOGRAD || !Simd.ENABLED || stride != 1 || w.kernelHeight() != 3 || w.kernelWidth() != 3) {
            return false;
        }
        int oh = outSize(x.size(1), 3, 1, padTop + padBottom);
        int ow = outSize(x.size(2), 3, 1, padLeft + padRight);
        long tiles = (long) x.size(0) * ((oh + 3) / 4) * ((ow + 3) / 4);
        return w.inChannels() >= 16 && w.outChannels() >= 16 && tiles >= 16;
    }

    /** Output size along one axis. */
    public static int outSize(int in, int kernel, int stride, int padTotal) {
        int o = (in + padTotal - kernel) / stride + 1;
        if (o <= 0) {
            throw new MarbleException("conv2d: input size " + in + " too small for kernel " + kernel);
        }
        return o;
    }
}
