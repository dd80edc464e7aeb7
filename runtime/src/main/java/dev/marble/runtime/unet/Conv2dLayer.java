package dev.marble.runtime.unet;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Conv2d;
import dev.marble.tensors.kernels.ConvWeights;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/** torch.nn.Conv2d (square kernel, with bias) on NHWC activations; padding may be asymmetric. */
final class Conv2dLayer {
    private final ConvWeights weight; // [out, in, k, k] in the file's dtype, bias [out] F32
    private final int stride;
    private final int padTop;
    private final int padLeft;
    private final int padBottom;
    private final int padRight;

    private Conv2dLayer(ConvWeights weight, int stride, int padTop, int padLeft, int padBottom, int padRight) {
        this.weight = weight;
        this.stride = stride;
        this.padTop = padTop;
        this.padLeft = padLeft;
        this.padBottom = padBottom;
        this.padRight = padRight;
    }

    /** {@code w.weight} [out, in, kernel, kernel] and {@code w.bias} [out], symmetric padding. */
    static Conv2dLayer load(WeightScope w, int in, int out, int kernel, int stride, int pad, Arena arena) {
        return load(w, in, out, kernel, stride, pad, pad, pad, pad, arena);
    }

    static Conv2dLayer load(WeightScope w, int in, int out, int kernel, int stride,
            int padTop, int padLeft, int padBottom, int padRight, Arena arena) {
        ConvWeights cw = ConvWeights.pack(w.tensor("weight", out, in, kernel, kernel),
                w.tensor("bias", out), arena);
        return new Conv2dLayer(cw, stride, padTop, padLeft, padBottom, padRight);
    }

    /** x [B, H, W, in] → a new workspace tensor [B, OH, OW, out]. */
    Tensor forward(Workspace ws, Tensor x) {
        int oh = Conv2d.outSize(x.size(1), weight.kernelHeight(), stride, padTop + padBottom);
        int ow = Conv2d.outSize(x.size(2), weight.kernelWidth(), stride, padLeft + padRight);
        Tensor y = ws.take(DType.F32, x.dim(0), oh, ow, weight.outChannels()); // [B, OH, OW, out]
        Conv2d.forward(x, weight, stride, padTop, padLeft, padBottom, padRight, y);
        return y;
    }
}
