package dev.marble.runtime.nn;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Conv2d;
import dev.marble.tensors.kernels.ConvWeights;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * torch.nn.Conv2d (square kernel, with bias) on channels-last activations:
 * x [B, H, W, in] → [B, OH, OW, out]. Stride and zero padding are fixed at load, as in torch.
 */
public final class Conv2dLayer {
    private final ConvWeights weight; // [out, in, k, k] in its file dtype or quantization + bias [out] F32
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

    /** Reads {@code weight} [out, in, k, k] and {@code bias} [out]; the same padding on every side. */
    public static Conv2dLayer load(WeightScope w, int in, int out, int kernel, int stride, int padding, Arena arena) {
        return load(w, in, out, kernel, stride, padding, padding, padding, padding, arena);
    }

    /**
     * As {@link #load(WeightScope, int, int, int, int, int, Arena)} with per-side zero padding. A
     * quantized weight stays quantized.
     */
    public static Conv2dLayer load(WeightScope w, int in, int out, int kernel, int stride, int padTop, int padLeft,
            int padBottom, int padRight, Arena arena) {
        QuantizedTensor q = w.quantized("weight", out, in, kernel, kernel);
        Tensor wt = q == null ? w.tensor("weight", out, in, kernel, kernel) : null;
        Tensor b = w.tensor("bias", out);
        ConvWeights packed = q != null ? ConvWeights.packQuantized(q, b, arena) : ConvWeights.pack(wt, b, arena);
        return new Conv2dLayer(packed, stride, padTop, padLeft, padBottom, padRight);
    }

    public int inChannels() {
        return weight.inChannels();
    }

    public int outChannels() {
        return weight.outChannels();
    }

    public int outHeight(int h) {
        return outSize("height", h, weight.kernelHeight(), padTop + padBottom);
    }

    public int outWidth(int w) {
        return outSize("width", w, weight.kernelWidth(), padLeft + padRight);
    }

    /** As torch: the padded input must hold at least one kernel window. */
    private int outSize(String axis, int in, int kernel, int padTotal) {
        if (in + padTotal < kernel) {
            throw new MarbleException("conv2d: input " + axis + " " + in + " (padded " + (in + padTotal)
                    + ") is smaller than the kernel " + kernel);
        }
        return Conv2d.outSize(in, kernel, stride, padTotal);
    }

    /** out [B, OH, OW, out] = conv(x [B, H, W, in]). */
    public void forward(Tensor x, Tensor out) {
        Conv2d.forward(x, weight, stride, padTop, padLeft, padBottom, padRight, out);
    }

    /** The result in a tensor taken from {@code ws}; x is left to the caller. */
    public Tensor forward(Workspace ws, Tensor x) {
        Tensor out = ws.take(DType.F32, x.dim(0), outHeight(x.size(1)), outWidth(x.size(2)), outChannels()); // [B, OH, OW, out]
        forward(x, out);
        return out;
    }
}
