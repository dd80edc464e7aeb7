package dev.marble.runtime.nn;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * Copies between the public NCHW layout (diffusers, golden files) and the channels-last layout the
 * models compute in. Both directions are a batch of 2-D transposes ([C, H·W] ↔ [H·W, C]), done in
 * square tiles so that reads and writes both stay within a few cache lines: a 512×512×128 VAE
 * activation is 128 MiB, and an element-by-element strided copy of it is memory-latency bound.
 */
public final class Layout {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Floats per tile: a tile and its transpose (8 KiB) stay in L1. */
    private static final int TILE_AREA = 1024;

    private Layout() {
    }

    /** Rows [r0, r1) of image n of a contiguous F32 x [B, H, W, C], as a [1, r1 − r0, W, C] view. */
    public static Tensor rows(Tensor x, int n, int r0, int r1) {
        long row = x.dim(2) * x.dim(3) * 4;
        return Tensor.wrap(x.data().asSlice(((long) n * x.dim(1) + r0) * row, (r1 - r0) * row), DType.F32, 1, r1 - r0,
                x.dim(2), x.dim(3));
    }

    /** dst [B, H, W, C] = src [B, C, H, W]. */
    public static void nchwToNhwc(Tensor src, Tensor dst) {
        checkRank4("NCHW input", src);
        long[] s = src.shape();
        checkShape("NHWC output", dst, s[0], s[2], s[3], s[1]);
        transpose(src.data(), dst.data(), (int) s[0], (int) s[1], Math.toIntExact(s[2] * s[3]));
    }

    /** dst [B, C, H, W] = src [B, H, W, C]. */
    public static void nhwcToNchw(Tensor src, Tensor dst) {
        checkRank4("NHWC input", src);
        long[] s = src.shape();
        checkShape("NCHW output", dst, s[0], s[3], s[1], s[2]);
        transpose(src.data(), dst.data(), (int) s[0], Math.toIntExact(s[1] * s[2]), (int) s[3]);
    }

    /**
     * A channels-last F32 copy of {@code nchw} [B, C, H, W], taken from {@code ws}. The input may have
     * any float dtype and any strides (a model input straight from a file): it is then widened to a
     * contiguous float[] first.
     */
    public static Tensor toNhwc(Workspace ws, Tensor nchw) {
        if (nchw.rank() != 4) {
            throw new MarbleException("NCHW input: expected a 4-D tensor [B, C, H, W], got " + nchw);
        }
        Tensor out = ws.take(DType.F32, nchw.dim(0), nchw.dim(2), nchw.dim(3), nchw.dim(1)); // [B, H, W, C]
        if (nchw.dtype() == DType.F32 && nchw.isContiguous()) {
            nchwToNhwc(nchw, out);
        } else {
            transpose(MemorySegment.ofArray(nchw.toFloatArray()), out.data(), nchw.size(0), nchw.size(1),
                    Math.toIntExact(nchw.dim(2) * nchw.dim(3)));
        }
        return out;
    }

    /** An NCHW copy of {@code nhwc} [B, H, W, C], taken from {@code ws}. */
    public static Tensor toNchw(Workspace ws, Tensor nhwc) {
        checkRank4("NHWC input", nhwc);
        Tensor out = ws.take(DType.F32, nhwc.dim(0), nhwc.dim(3), nhwc.dim(1), nhwc.dim(2)); // [B, C, H, W]
        nhwcToNchw(nhwc, out);
        return out;
    }

    /**
     * dst [b][cols][rows] = src [b][rows][cols], contiguous F32, in tiles of about 1024 floats. A
     * dimension under 32 (3 image channels, 4 latent channels) is taken whole, and the other side of
     * the tile grows to keep the area: a tile spanning all columns is one contiguous read, one
     * spanning all rows is one contiguous write.
     */
    static void transpose(MemorySegment src, MemorySegment dst, int batch, int rows, int cols) {
        int tileRows = rows < 32 ? rows : cols < 32 ? Math.min(rows, TILE_AREA / cols) : 32;
        int tileCols = cols < 32 ? cols : rows < 32 ? Math.min(cols, TILE_AREA / rows) : 32;
        int rowTiles = (rows + tileRows - 1) / tileRows;
        int colTiles = (cols + tileCols - 1) / tileCols;
        int perBatch = Math.toIntExact((long) rowTiles * colTiles);
        int tiles = Math.toIntExact((long) batch * perBatch);
        long plane = (long) rows * cols;
        Parallel.forChunks(tiles, (chunk, t0, t1) -> {
            float[] in = new float[tileRows * tileCols];
            float[] out = new float[tileRows * tileCols];
            for (int t = t0; t < t1; t++) {
                int b = t / perBatch;
                int r0 = t % perBatch / colTiles * tileRows;
                int c0 = t % colTiles * tileCols;
                int nr = Math.min(tileRows, rows - r0);
                int nc = Math.min(tileCols, cols - c0);
                long base = b * plane;
                // 1. read the tile as in [nr][nc]
                if (nc == cols) {
                    MemorySegment.copy(src, F, (base + (long) r0 * cols) * 4, in, 0, nr * nc);
                } else {
                    for (int r = 0; r < nr; r++) {
                        MemorySegment.copy(src, F, (base + (long) (r0 + r) * cols + c0) * 4, in, r * nc, nc);
                    }
                }
                // 2. transpose to out [nc][nr]
                for (int c = 0; c < nc; c++) {
                    for (int r = 0; r < nr; r++) {
                        out[c * nr + r] = in[r * nc + c];
                    }
                }
                // 3. write it
                if (nr == rows) {
                    MemorySegment.copy(out, 0, dst, F, (base + (long) c0 * rows) * 4, nc * nr);
                } else {
                    for (int c = 0; c < nc; c++) {
                        MemorySegment.copy(out, c * nr, dst, F, (base + (long) (c0 + c) * rows + r0) * 4, nr);
                    }
                }
            }
        });
    }

    private static void checkRank4(String what, Tensor t) {
        if (t.dtype() != DType.F32 || !t.isContiguous() || t.rank() != 4) {
            throw new MarbleException(what + ": expected a contiguous 4-D F32 tensor, got " + t);
        }
    }

    private static void checkShape(String what, Tensor t, long... shape) {
        if (t.dtype() != DType.F32 || !t.isContiguous() || !Arrays.equals(t.shape(), shape)) {
            throw new MarbleException(what + ": expected a contiguous F32 tensor of shape "
                    + Arrays.toString(shape) + ", got " + t);
        }
    }
}
