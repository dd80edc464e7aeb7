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
    /** Tile edge in floats: a 32×32 tile (4 KiB) plus its transposed row buffer fit in L1. */
    private static final int TILE = 32;

    private Layout() {
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

    /** A channels-last copy of {@code nchw} [B, C, H, W], taken from {@code ws}. */
    public static Tensor toNhwc(Workspace ws, Tensor nchw) {
        checkRank4("NCHW input", nchw);
        Tensor out = ws.take(DType.F32, nchw.dim(0), nchw.dim(2), nchw.dim(3), nchw.dim(1)); // [B, H, W, C]
        nchwToNhwc(nchw, out);
        return out;
    }

    /** An NCHW copy of {@code nhwc} [B, H, W, C], taken from {@code ws}. */
    public static Tensor toNchw(Workspace ws, Tensor nhwc) {
        checkRank4("NHWC input", nhwc);
        Tensor out = ws.take(DType.F32, nhwc.dim(0), nhwc.dim(3), nhwc.dim(1), nhwc.dim(2)); // [B, C, H, W]
        nhwcToNchw(nhwc, out);
        return out;
    }

    /** dst [b][cols][rows] = src [b][rows][cols], contiguous F32. */
    static void transpose(MemorySegment src, MemorySegment dst, int batch, int rows, int cols) {
        int rowTiles = (rows + TILE - 1) / TILE;
        int colTiles = (cols + TILE - 1) / TILE;
        long perBatch = (long) rowTiles * colTiles;
        int tiles = Math.toIntExact(batch * perBatch);
        long plane = (long) rows * cols;
        Parallel.forChunks(tiles, (chunk, t0, t1) -> {
            float[] tile = new float[TILE * TILE];
            float[] line = new float[TILE];
            for (int t = t0; t < t1; t++) {
                int b = (int) (t / perBatch);
                int rt = (int) (t % perBatch / colTiles);
                int ct = (int) (t % colTiles);
                int r0 = rt * TILE;
                int c0 = ct * TILE;
                int nr = Math.min(TILE, rows - r0);
                int nc = Math.min(TILE, cols - c0);
                long base = b * plane;
                // 1. read nr source rows of nc floats each
                for (int r = 0; r < nr; r++) {
                    MemorySegment.copy(src, F, (base + (long) (r0 + r) * cols + c0) * 4, tile, r * TILE, nc);
                }
                // 2. write them back as nc destination rows of nr floats
                for (int c = 0; c < nc; c++) {
                    for (int r = 0; r < nr; r++) {
                        line[r] = tile[r * TILE + c];
                    }
                    MemorySegment.copy(line, 0, dst, F, (base + (long) (c0 + c) * rows + r0) * 4, nr);
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
