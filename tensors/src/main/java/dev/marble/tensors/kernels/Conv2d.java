package dev.marble.tensors.kernels;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;

/**
 * 2-D convolution over channels-last activations: x [B, H, W, IC] → out [B, OH, OW, OC], with
 * OH = (H + padTop + padBottom − KH) / stride + 1 (likewise OW). Zero padding. Runs the vector kernel
 * ({@link Conv2dSimd}, an implicit GEMM) when {@link Simd#ENABLED}, else the scalar twin; 3×3
 * stride-1 convolutions with a vector of input channels or more take the Winograd path ({@link Conv2dWinograd})
 * unless {@code -Dmarble.conv.winograd=false}. {@link Flops} counts direct-convolution FLOPs on
 * both paths, so GFLOP/s figures stay comparable.
 */
public final class Conv2d {
    /**
     * Output rows of a Winograd tile. Its rounding depends on where a pixel sits in its tile, so a
     * caller that convolves an image in bands of rows and needs exactly the whole-image sums starts
     * every band at a multiple of this many rows (the direct path's sums do not depend on it).
     */
    public static final int ROW_TILE = 4;

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
        if (usesWinograd(x, w, stride)) {
            Conv2dWinograd.forward(x, w, padTop, padLeft, out);
        } else if (Simd.ENABLED) {
            Conv2dSimd.forward(x, w, stride, padTop, padLeft, out);
        } else {
            Conv2dScalar.forward(x, w, stride, padTop, padLeft, out);
        }
    }

    /**
     * Whether {@link #forward} takes the Winograd path: 3×3, stride 1, vector kernels on, and at least
     * one vector of input channels. Measured at 256 bits (single-thread CPU time, F16 weights): with
     * IC = 4 the input transform runs on its channel-tail path and direct wins (Winograd 0.35-0.9×);
     * from IC = 8 on Winograd won every shape tried, 1.1-1.5× at 4-16 tiles of 4×4 pixels, ~2× at
     * 32-128 tiles or 3-4 output channels, 3-3.5× at 128-4096 tiles and 128-1280 channels.
     */
    static boolean usesWinograd(Tensor x, ConvWeights w, int stride) {
        return WINOGRAD && Simd.ENABLED && stride == 1 && w.kernelHeight() == 3 && w.kernelWidth() == 3
                && x.size(3) >= Simd.lanes();
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
