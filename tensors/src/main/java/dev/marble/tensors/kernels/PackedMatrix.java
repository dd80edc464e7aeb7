package dev.marble.tensors.kernels;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantizedTensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * The weight operand B [K, N] of a GEMM, kept in its storage format (F32, F16, BF16, or a block
 * quantization: q8_0, q4_0, q4_k) so that a model is never expanded to F32. Built once at load from a
 * PyTorch Linear weight [N, K] (out features × in features) and laid out as K-major panels of
 * {@link #NR} columns: panel p holds B[0..K, p·NR .. p·NR+NR) row after row, the last panel
 * zero-padded (a quantized panel keeps its blocks of 32 rows, see {@link QuantPanels}). The GEMM
 * decodes a few rows of a panel at a time to F32 through the format's {@link PanelDecoder}.
 */
public final class PackedMatrix {
    /** Columns per panel: two vectors, the width of the GEMM micro-tile. */
    public static final int NR = 2 * Simd.lanes();

    private final DType dtype;
    private final String format;
    private final int k;
    private final int n;
    private final PanelDecoder decoder;
    /** [ceil(N / NR)][K][NR] in the weight's dtype. */
    private final MemorySegment data;

    private PackedMatrix(DType dtype, String format, int k, int n, PanelDecoder decoder, MemorySegment data) {
        this.dtype = dtype;
        this.format = format;
        this.k = k;
        this.n = n;
        this.decoder = decoder;
        this.data = data;
    }

    /** Packs a Linear weight [N, K] (or any [N, ...] tensor, flattened to [N, K]) into {@code arena}. */
    public static PackedMatrix ofLinear(Tensor weight, Arena arena) {
        DType dt = weight.dtype();
        PanelDecoder.Dense decoder = PanelDecoder.of(dt);
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
        return new PackedMatrix(dt, dt.safetensorsName(), k, n, decoder, packed);
    }

    /**
     * Packs a quantized Linear weight [N, K], or a 1×1 conv [N, K, 1, 1] used as one, into
     * {@code arena}, still quantized: as many bytes as its planes (plus a ragged last panel's zero
     * columns).
     */
    public static PackedMatrix ofQuantized(QuantizedTensor q, Arena arena) {
        long[] s = q.shape();
        if (s.length != 2 && (s[2] != 1 || s[3] != 1)) {
            throw new MarbleException("GEMM weight " + q + " must be [N, K] or [N, K, 1, 1], got " + Arrays.toString(s));
        }
        QuantPanels codec = QuantPanels.of(q.format());
        int n = Math.toIntExact(s[0]);
        int k = q.k();
        int panels = (n + NR - 1) / NR;
        MemorySegment packed = arena.allocate(Math.multiplyExact(panels, codec.panelBytes(k)), Tensor.ALIGNMENT);
        Parallel.forChunks(panels, (chunk, p0, p1) -> codec.pack(q, 1, packed, p0, p1));
        for (int p = 0; p < q.format().planes().size(); p++) {
            MappedPages.release(q.plane(p));
        }
        return new PackedMatrix(q.plane(0).dtype(), q.format().id(), k, n, codec, packed);
    }

    /**
     * The element dtype held: F32, F16 or BF16 for a dense weight; for a quantized one the dtype of
     * its codes (I8 for q8_0, U8 for the 4-bit formats), see {@link #format}.
     */
    public DType dtype() {
        return dtype;
    }

    /** The storage format: the dtype's name (F32, F16, BF16) or the quantization's id (q8_0, q4_0, q4_k). */
    public String format() {
        return format;
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

    /** Bytes held: K × N rounded up to whole panels, in the weight's own format. */
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
