package dev.marble.tensors.kernels;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;

/**
 * 2-D convolution over channels-last activations: x [B, H, W, IC] → out [B, OH, OW, OC], with
 * OH = (H + padTop + padBottom − KH) / stride + 1 (likewise OW). Zero padding. Runs the vector kernel
 * ({@link Conv2dSimd}, an implicit GEMM) when {@link Simd#ENABLED}, else the scalar twin.
 */
public final class Conv2d {
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
        if (Simd.ENABLED) {
            Conv2dSimd.forward(x, w, stride, padTop, padLeft, out);
        } else {
            Conv2dScalar.forward(x, w, stride, padTop, padLeft, out);
        }
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
