package dev.marble.tensors.kernels;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The weight operand B [K, N] of a GEMM, kept in its storage dtype (F32, F16 or BF16) so that a
 * half-precision model is never expanded to F32. Built once at load from a PyTorch Linear weight
 * [N, K] (out features × in features) and laid out as K-major panels of {@link #NR} columns:
 * panel p holds B[0..K, p·NR .. p·NR+NR) row after row, the last panel zero-padded. The GEMM
 * decodes a few rows of a panel at a time to F32 through the format's {@link PanelDecoder}.
 */
public final class PackedMatrix {
    /** Columns per panel: two vectors, the width of the GEMM micro-tile. */
    public static final int NR = 2 * Simd.lanes();

    private final DType dtype;
    private final int k;
    private final int n;
    private final PanelDecoder decoder;
    /** [ceil(N / NR)][K][NR] in the weight's dtype. */
    private final MemorySegment data;

    private PackedMatrix(DType dtype, int k, int n, PanelDecoder decoder, MemorySegment data) {
        this.dtype = dtype;
        this.k = k;
        this.n = n;
        this.decoder = decoder;
        this.data = data;
    }

    /** Packs a Linear weight [N, K] (or any [N, ...] tensor, flattened to [N, K]) into {@code arena}. */
    public static PackedMatrix ofLinear(Tensor weight, Arena arena) {
        DType dt = weight.dtype();
        PanelDecoder decoder = PanelDecoder.of(dt);
        if (weight.rank() < 1) {
            throw new MarbleException("GEMM weight must have at least one dimension, got a scalar");
        }
        int n = weight.size(0);
        int k = Math.toIntExact(weight.numel() / Math.max(1, n));
        if (n == 0 || k == 0) {
            throw new MarbleException("GEMM weight " + weight + " is empty");
        }
        Tensor src = weight.contiguous(arena);
        int panels = (n + NR - 1) / NR;
        long bytes = Math.multiplyExact((long) panels * NR, (long) k * dt.byteSize());
        MemorySegment packed = arena.allocate(bytes, Tensor.ALIGNMENT);
        MemorySegment from = src.data();
        Parallel.forChunks(panels, (chunk, p0, p1) -> decoder.pack(from, packed, k, n, p0, p1));
        MappedPages.release(weight);
        return new PackedMatrix(dt, k, n, decoder, packed);
    }

    public DType dtype() {
        return dtype;
    }

    /** Inner dimension (input features). */
    public int k() {
        return k;
    }

    /** Output dimension (output features). */
    public int n() {
        return n;
    }

    /** Number of NR-column panels. */
    public int panels() {
        return (n + NR - 1) / NR;
    }

    /** Bytes held: K × N rounded up to whole panels, at the weight's own element size. */
    public long byteSize() {
        return data.byteSize();
    }

    /** B[k, n] widened to float: the scalar path and tests. */
    public float get(int kk, int nn) {
        if (kk < 0 || kk >= k || nn < 0 || nn >= n) {
            throw new MarbleException("PackedMatrix.get(" + kk + ", " + nn + ") outside [" + k + ", " + n + "]");
        }
        return decoder.get(data, k, kk, nn);
    }

    /** Decodes rows [k0, k0 + kc) of panel {@code panel} to F32 into dst[dstOff ..] (kc × NR floats). */
    void decode(int panel, int k0, int kc, float[] dst, int dstOff) {
        decoder.decode(data, k, panel, k0, kc, dst, dstOff);
    }
}
