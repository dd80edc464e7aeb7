package dev.marble.tensors.quant;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Numerics;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;

/**
 * A weight stored in a {@link QuantFormat}: its logical PyTorch shape (Linear [N, K] or conv
 * [OC, IC, KH, KW]) and the format's planes, each a contiguous tensor (a zero-copy view of a mapped
 * file, or memory of an arena). Rows run along K (IC for a conv, one row per (oc, ky, kx)); see
 * {@link QuantFormat} for the layout. Immutable once built; the memory belongs to whoever allocated
 * or mapped it.
 */
public final class QuantizedTensor {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** A thread that never runs: asking whether memory is accessible by it tells a confined arena apart. */
    private static final Thread OTHER = Thread.ofVirtual().unstarted(() -> { });

    private final QuantFormat format;
    private final long[] shape;
    private final long rows;
    private final int k;
    private final Tensor[] planes;
    private final long[] rowBytes;

    private QuantizedTensor(QuantFormat format, long[] shape, Tensor[] planes) {
        this.format = format;
        this.shape = shape;
        this.k = (int) shape[1];
        this.rows = shape[0] * (shape.length == 4 ? shape[2] * shape[3] : 1);
        this.planes = planes;
        this.rowBytes = new long[planes.length];
        for (int p = 0; p < planes.length; p++) {
            rowBytes[p] = format.rowBytes(p, k);
        }
    }

    /** Zeroed planes for a weight of {@code shape}, in {@code arena}. */
    public static QuantizedTensor allocate(QuantFormat format, long[] shape, Arena arena) {
        requireQuantizable("quantized tensor", shape);
        Tensor[] planes = new Tensor[format.planes().size()];
        for (int p = 0; p < planes.length; p++) {
            planes[p] = Tensor.allocate(arena, format.planes().get(p).dtype(), planeShape(format, shape, p));
        }
        return new QuantizedTensor(format, shape.clone(), planes);
    }

    /**
     * Wraps existing planes (e.g. views of a mapped file), checking each one's dtype, shape and
     * contiguity; {@code what} names the weight in the one-line error.
     */
    public static QuantizedTensor of(String what, QuantFormat format, long[] shape, List<Tensor> planes) {
        requireQuantizable(what, shape);
        List<QuantFormat.Plane> spec = format.planes();
        if (planes.size() != spec.size()) {
            throw new MarbleException(what + ": " + format + " needs " + spec.size() + " planes, got " + planes.size());
        }
        for (int p = 0; p < spec.size(); p++) {
            Tensor t = planes.get(p);
            long[] expected = planeShape(format, shape, p);
            String name = "plane '" + spec.get(p).suffix() + "'";
            if (t.dtype() != spec.get(p).dtype()) {
                throw new MarbleException(what + ": " + name + " is " + t.dtype().safetensorsName() + ", "
                        + format + " stores it as " + spec.get(p).dtype().safetensorsName());
            }
            if (!Arrays.equals(t.shape(), expected)) {
                throw new MarbleException(what + ": " + name + " has shape " + Arrays.toString(t.shape())
                        + ", expected " + Arrays.toString(expected) + " for " + format + " of shape "
                        + Arrays.toString(shape));
            }
            if (!t.isContiguous()) {
                throw new MarbleException(what + ": " + name + " is not contiguous");
            }
        }
        return new QuantizedTensor(format, shape.clone(), planes.toArray(Tensor[]::new));
    }

    /** The shape of plane {@code plane} for a weight of {@code shape}: the row layout, then the row's shape. */
    public static long[] planeShape(QuantFormat format, long[] shape, int plane) {
        long[] lead = shape.length == 4 ? new long[] {shape[0], shape[2], shape[3]} : new long[] {shape[0]};
        long[] row = format.planeRowShape(plane, (int) shape[1]);
        long[] s = Arrays.copyOf(lead, lead.length + row.length);
        System.arraycopy(row, 0, s, lead.length, row.length);
        return s;
    }

    private static void requireQuantizable(String what, long[] shape) {
        if (!QuantFormat.quantizable(shape)) {
            throw new MarbleException(what + ": shape " + Arrays.toString(shape) + " cannot be quantized (needs [N, K]"
                    + " or [OC, IC, KH, KW] with K or IC a positive multiple of " + QuantFormat.BLOCK + ")");
        }
    }

    /**
     * Quantizes {@code weight} (F32, F16 or BF16; Linear [N, K] or conv [OC, IC, KH, KW]) into new
     * planes in {@code arena}. Rows are quantized on the worker pool when the arena is shared. The
     * weight is read one output channel at a time, so the heap holds one [IC, KH, KW] slab per thread.
     */
    public static QuantizedTensor quantize(String name, Tensor weight, QuantFormat format, Arena arena) {
        DType dt = weight.dtype();
        if (dt != DType.F32 && dt != DType.F16 && dt != DType.BF16) {
            throw new MarbleException(name + ": cannot quantize a " + dt.safetensorsName() + " tensor (F32, F16 or BF16 only)");
        }
        long[] shape = weight.shape();
        requireQuantizable(name, shape);
        QuantizedTensor q = allocate(format, shape, arena);
        Tensor src = weight.contiguous(arena);
        int ic = q.k;
        int taps = shape.length == 4 ? Math.toIntExact(shape[2] * shape[3]) : 1;
        int slab = Math.multiplyExact(ic, taps);
        int oc = Math.toIntExact(shape[0]);
        boolean shared = q.planes[0].data().isAccessibleBy(OTHER) && src.data().isAccessibleBy(OTHER);
        Parallel.ChunkBody body = (chunk, from, to) -> {
            float[] w = new float[slab];
            float[] row = new float[ic];
            for (int o = from; o < to; o++) {
                readFloats(src, (long) o * slab, w);
                for (int t = 0; t < taps; t++) {
                    for (int c = 0; c < ic; c++) {
                        row[c] = w[c * taps + t]; // [IC, KH, KW] → the IC column of tap t
                    }
                    try {
                        format.quantizeRow(row, 0, q, (long) o * taps + t);
                    } catch (MarbleException e) {
                        throw new MarbleException(name + ": row " + ((long) o * taps + t) + ": " + e.getMessage());
                    }
                }
            }
        };
        if (shared) {
            Parallel.forChunks(oc, body);
        } else {
            body.run(0, 0, oc);
        }
        return q;
    }

    /** n = dst.length elements of contiguous {@code t} from element {@code from}, widened to float. */
    private static void readFloats(Tensor t, long from, float[] dst) {
        MemorySegment s = t.data();
        switch (t.dtype()) {
            case F32 -> MemorySegment.copy(s, F32, from * 4, dst, 0, dst.length);
            case F16 -> {
                for (int i = 0; i < dst.length; i++) {
                    dst[i] = Float.float16ToFloat(s.get(HALF, (from + i) * 2));
                }
            }
            case BF16 -> {
                for (int i = 0; i < dst.length; i++) {
                    dst[i] = Numerics.bf16ToFloat(s.get(HALF, (from + i) * 2));
                }
            }
            default -> throw new IllegalStateException(t.dtype().toString());
        }
    }

    /**
     * The whole weight decoded to a new F32 tensor of the logical shape, for tests and tools. Models
     * never call this: the kernels decode small panels on the fly, so a model is never expanded.
     */
    public Tensor dequantize(Arena arena) {
        Tensor out = Tensor.allocate(arena, DType.F32, shape);
        int taps = shape.length == 4 ? Math.toIntExact(shape[2] * shape[3]) : 1;
        float[] row = new float[k];
        MemorySegment o = out.data();
        for (long r = 0; r < rows; r++) {
            format.dequantizeRow(this, r, row, 0);
            long oc = r / taps;
            long t = r % taps;
            for (int c = 0; c < k; c++) {
                o.setAtIndex(F32, (oc * k + c) * taps + t, row[c]);
            }
        }
        return out;
    }

    public QuantFormat format() {
        return format;
    }

    /** The logical PyTorch shape: [N, K] or [OC, IC, KH, KW]. */
    public long[] shape() {
        return shape.clone();
    }

    /** Quantized rows: N, or OC · KH · KW. */
    public long rows() {
        return rows;
    }

    /** Elements per row: K, or IC. */
    public int k() {
        return k;
    }

    public int blocksPerRow() {
        return k / QuantFormat.BLOCK;
    }

    /** Plane {@code p} in the order of {@link QuantFormat#planes()}. */
    public Tensor plane(int p) {
        return planes[p];
    }

    /** Byte offset of row {@code row} in plane {@code p}. */
    public long rowOffset(int p, long row) {
        return row * rowBytes[p];
    }

    /** Bytes held by all planes. */
    public long byteSize() {
        long n = 0;
        for (Tensor t : planes) {
            n += t.byteSize();
        }
        return n;
    }

    @Override
    public String toString() {
        return format + Arrays.toString(shape);
    }
}
