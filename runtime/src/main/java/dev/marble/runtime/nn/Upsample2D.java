package dev.marble.runtime.nn;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * diffusers {@code Upsample2D} with use_conv: nearest-neighbour 2× (F.interpolate mode "nearest"), then a
 * 3×3 conv.
 */
public final class Upsample2D {
    private final Conv2dLayer conv; // [C, C, 3, 3], pad 1

    private Upsample2D(Conv2dLayer conv) {
        this.conv = conv;
    }

    public static Upsample2D load(WeightScope w, int channels, Arena arena) {
        return new Upsample2D(Conv2dLayer.load(w.at("conv"), channels, channels, 3, 1, 1, arena));
    }

    /**
     * x [B, H, W, C] → a new workspace tensor [B, 2H, 2W, C]; x is given back to {@code ws}. A small x
     * is upsampled whole and given back at once, so that it is not live alongside the conv output; from
     * {@link Conv2dLayer#BAND_BYTES} of upsampled map on, the map is made and convolved a band of rows
     * at a time instead, and x stays until the end (a quarter of the map's size).
     */
    public Tensor forward(Workspace ws, Tensor x) {
        return forward(ws, x, 2 * x.size(1), 2 * x.size(2));
    }

    /**
     * The same to an explicit size [B, outH, outW, C]: diffusers' {@code upsample_size}, which the UNet
     * passes when a latent side is not a multiple of 2^levels, so each upsampled map matches its skip.
     */
    public Tensor forward(Workspace ws, Tensor x, int outH, int outW) {
        boolean doubled = outH == 2 * x.dim(1) && outW == 2 * x.dim(2);
        if (doubled && 4 * x.byteSize() >= Conv2dLayer.BAND_BYTES) {
            return forwardInBands(ws, x, conv.bandRows(outW * x.dim(3) * 4));
        }
        Tensor up = ws.take(DType.F32, x.dim(0), outH, outW, x.dim(3)); // [B, outH, outW, C]
        if (doubled) {
            Elementwise.upsampleNearest2x(x, up);
        } else {
            resizeNearest(x, up);
        }
        ws.give(x);
        Tensor out = conv.forward(ws, up); // [B, 2H, 2W, C]
        ws.give(up);
        return out;
    }

    /**
     * The 2× path in bands of {@code rows} output rows (rounded up to whole Winograd tiles, see
     * {@link Conv2dLayer#alignBand}): only the few upsampled rows a band reads
     * exist at a time (for the VAE decoder at 512×512 the whole upsampled map would be 256 MiB). The
     * same sums as {@link #forward(Workspace, Tensor)}. x is given back to {@code ws}.
     */
    Tensor forwardInBands(Workspace ws, Tensor x, int rows) {
        int bandRows = Conv2dLayer.alignBand(rows);
        int b = x.size(0);
        int oh = 2 * x.size(1);
        int ow = 2 * x.size(2);
        long c = x.dim(3);
        Tensor out = ws.take(DType.F32, b, oh, ow, c); // [B, 2H, 2W, C]
        // A band reads at most bandRows + k − 1 upsampled rows, made from whole source rows.
        int sourceRows = Math.min(x.size(1), (bandRows + conv.kernelHeight()) / 2 + 1);
        Tensor buf = ws.take(DType.F32, 1, 2L * sourceRows, ow, c); // [1, 2·sourceRows, 2W, C]
        for (int n = 0; n < b; n++) {
            for (int y0 = 0; y0 < oh; y0 += bandRows) {
                int y1 = Math.min(oh, y0 + bandRows);
                int r0 = conv.firstInputRow(y0);
                int r1 = conv.endInputRow(y1, oh);
                int s0 = r0 / 2;
                int s1 = (r1 + 1) / 2;
                Tensor up = Layout.rows(buf, 0, 0, 2 * (s1 - s0)); // [1, 2(s1 - s0), 2W, C]
                Elementwise.upsampleNearest2x(Layout.rows(x, n, s0, s1), up);
                conv.forwardRows(Layout.rows(buf, 0, r0 - 2 * s0, r1 - 2 * s0), oh, y0, y1, Layout.rows(out, n, y0, y1));
            }
        }
        ws.give(buf);
        ws.give(x);
        return out;
    }

    /**
     * torch's "nearest" interpolation to any size: source index = min(floor(dst · (float) in / out),
     * in − 1) per axis, computed in float as torch does. Whole pixels (C floats) are copied.
     */
    static void resizeNearest(Tensor x, Tensor out) {
        int b = x.size(0);
        int h = x.size(1);
        int w = x.size(2);
        long rowBytes = x.dim(3) * 4L;
        int oh = out.size(1);
        int ow = out.size(2);
        float sy = (float) h / oh;
        float sx = (float) w / ow;
        for (int n = 0; n < b; n++) {
            for (int y = 0; y < oh; y++) {
                int iy = Math.min((int) Math.floor(y * sy), h - 1);
                for (int xx = 0; xx < ow; xx++) {
                    int ix = Math.min((int) Math.floor(xx * sx), w - 1);
                    java.lang.foreign.MemorySegment.copy(x.data(), (((long) n * h + iy) * w + ix) * rowBytes,
                            out.data(), (((long) n * oh + y) * ow + xx) * rowBytes, rowBytes);
                }
            }
        }
    }
}
