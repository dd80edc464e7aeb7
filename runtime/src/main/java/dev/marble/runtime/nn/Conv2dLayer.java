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
import java.lang.foreign.MemorySegment;

/**
 * torch.nn.Conv2d (square kernel, with bias) on channels-last activations:
 * x [B, H, W, in] → [B, OH, OW, out]. Stride and zero padding are fixed at load, as in torch.
 */
public final class Conv2dLayer {
    /**
     * A map of at least this many bytes is convolved in bands of output rows where a caller can avoid
     * making it whole (an upsampled map, or an input its result replaces), see {@link #forwardRows}.
     */
    public static final long BAND_BYTES = 32L << 20;
    /** Bytes of input rows per band: a few MB keeps the kernel busy across threads and the buffers small. */
    private static final long BAND_INPUT_BYTES = 8L << 20;

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

    public int kernelHeight() {
        return weight.kernelHeight();
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

    /** Output rows per band for inputs of {@code rowBytes} per row: at least the kernel height. */
    public int bandRows(long rowBytes) {
        return alignBand((int) Math.max(weight.kernelHeight(),
                Math.min(Integer.MAX_VALUE / 2, BAND_INPUT_BYTES / Math.max(1, rowBytes))));
    }

    /**
     * Band height {@code rows} rounded up to whole Winograd tiles ({@link Conv2d#ROW_TILE}), so that
     * bands starting at multiples of it get exactly the whole-image call's sums.
     */
    static int alignBand(int rows) {
        return (rows + Conv2d.ROW_TILE - 1) / Conv2d.ROW_TILE * Conv2d.ROW_TILE;
    }

    /** The first input row that output row y0 reads (stride 1). */
    public int firstInputRow(int y0) {
        return Math.max(0, y0 - padTop);
    }

    /** One past the last input row that output rows before y1 read, of an input inH rows high (stride 1). */
    public int endInputRow(int y1, int inH) {
        return Math.min(inH, y1 - 1 - padTop + weight.kernelHeight());
    }

    /**
     * Output rows [y0, y1) of one image, for a stride-1 layer: {@code in} [1, r1 − r0, W, in] holds the
     * input rows [r0, r1) = [{@link #firstInputRow}(y0), {@link #endInputRow}(y1, inH)) of an image
     * inH rows high, and out is [1, y1 − y0, OW, out]. Every output value is the sum the whole-image
     * call makes when y0 is a multiple of {@link Conv2d#ROW_TILE} ({@link #alignBand}): the band's
     * edges are real rows, and only the image's own top and bottom are padded.
     */
    public void forwardRows(Tensor in, int inH, int y0, int y1, Tensor out) {
        if (stride != 1) {
            throw new IllegalStateException("conv2d in bands needs stride 1, not " + stride);
        }
        int r0 = firstInputRow(y0);
        int r1 = endInputRow(y1, inH);
        if (in.dim(1) != r1 - r0 || out.dim(1) != y1 - y0) {
            throw new IllegalStateException("conv2d band: rows [" + y0 + ", " + y1 + ") need input rows [" + r0 + ", "
                    + r1 + "), got " + in + " → " + out);
        }
        int padT = Math.max(0, padTop - y0);
        int padB = Math.max(0, y1 - 1 - padTop + weight.kernelHeight() - inH);
        Conv2d.forward(in, weight, 1, padT, padLeft, padB, padRight, out);
    }

    /**
     * The result written over x's own buffer, for a stride-1 layer that keeps the spatial size and has
     * fewer output than input channels: x is consumed (it must come from {@code ws}), and the result
     * [B, H, W, out] is a workspace tensor at x's address, the rest of x's buffer freed. Bands of
     * output rows are computed into a small buffer and copied to their place in the result, which
     * lies below every input row still to be read. Saves a result-sized buffer next to x.
     */
    public Tensor forwardOverInput(Workspace ws, Tensor x) {
        return forwardOverInput(ws, x, bandRows(x.dim(2) * x.dim(3) * 4));
    }

    /** As {@link #forwardOverInput(Workspace, Tensor)} in bands of at least {@code bandRows} output rows. */
    Tensor forwardOverInput(Workspace ws, Tensor x, int bandRows) {
        int b = x.size(0);
        int h = x.size(1);
        int w = x.size(2);
        long ic = x.dim(3);
        long oc = outChannels();
        if (outHeight(h) != h || outWidth(w) != w || oc >= ic || stride != 1) {
            throw new IllegalStateException("conv2d over its input: " + x + " → " + oc + " channels does not shrink in place");
        }
        // The first band's result must end below the first input row the second band reads.
        int least = (int) ((padTop * ic + ic - oc - 1) / (ic - oc)) + 1;
        int band = alignBand(Math.max(least, bandRows));
        long outRow = w * oc * 4;
        Tensor tmp = ws.take(DType.F32, 1, Math.min(band, h), w, oc); // [1, band, W, out]
        for (int n = 0; n < b; n++) {
            for (int y0 = 0; y0 < h; y0 += band) {
                int y1 = Math.min(h, y0 + band);
                int r0 = firstInputRow(y0);
                int r1 = endInputRow(y1, h);
                Tensor in = Layout.rows(x, n, r0, r1); // [1, r1 - r0, W, in]
                Tensor o = Tensor.wrap(tmp.data().asSlice(0, (y1 - y0) * outRow), DType.F32, 1, y1 - y0, w, oc);
                forwardRows(in, h, y0, y1, o);
                long dst = ((long) n * h + y0) * outRow;
                long nextRead = y1 < h ? ((long) n * h + firstInputRow(y1)) * w * ic * 4 : ((long) n + 1) * h * w * ic * 4;
                if (dst + (y1 - y0) * outRow > nextRead) {
                    throw new IllegalStateException("conv2d over its input: band [" + y0 + ", " + y1 + ") would overwrite"
                            + " input rows still to be read");
                }
                MemorySegment.copy(tmp.data(), 0, x.data(), dst, (y1 - y0) * outRow);
            }
        }
        ws.give(tmp);
        return ws.shrink(x, DType.F32, b, h, w, oc);
    }

    /** The result in a tensor taken from {@code ws}; x is left to the caller. */
    public Tensor forward(Workspace ws, Tensor x) {
        Tensor out = ws.take(DType.F32, x.dim(0), outHeight(x.size(1)), outWidth(x.size(2)), outChannels()); // [B, OH, OW, out]
        forward(x, out);
        return out;
    }
}
