package dev.marble.tensors.quant;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * A block-quantized storage format for weights: one final class per format ({@link Q8_0},
 * {@link Q4_0}, {@link Q4_K}), each owning its bit layout, its scalar quantizer and its scalar
 * decoder. The scalar decoder is the reference that the GEMM and conv panel decoders vectorize.
 *
 * <p><b>Which axis.</b> Quantization always runs along the input dimension K of a weight, so that a
 * kernel decodes whole blocks along its reduction axis:
 * <ul>
 * <li>Linear {@code [N, K]}: row n is the K inputs of output n;</li>
 * <li>conv {@code [OC, IC, KH, KW]}: row (oc, ky, kx) is the IC input channels of that tap, rows in
 *     order ((oc · KH + ky) · KW + kx). The stored planes are therefore laid out
 *     {@code [OC, KH, KW, <IC blocks>]}, the channels-last order a channels-last conv kernel walks.</li>
 * </ul>
 * K (IC for a conv) must be a positive multiple of {@link #BLOCK}; any other tensor is not quantizable
 * (the rules keep it in F16).
 *
 * <p><b>Storage.</b> A quantized tensor is a few planes (data, scales, ...), each a plain tensor whose
 * shape is the row layout above followed by the format's per-row shape ({@link #planeRowShape}).
 * Planes are little-endian and need no alignment beyond their element size.
 */
public abstract sealed class QuantFormat permits Q8_0, Q4_0, Q4_K {
    /** Elements per block: a (sub-)block shares one scale. */
    public static final int BLOCK = 32;

    /** One stored tensor of a format: its name suffix (after the weight's name and a dot) and dtype. */
    public record Plane(String suffix, DType dtype) {
    }

    private final String id;
    private final List<Plane> planes;

    QuantFormat(String id, List<Plane> planes) {
        this.id = id;
        this.planes = List.copyOf(planes);
    }

    /** The format's name as the CLI and the file metadata spell it, e.g. {@code q8_0}. */
    public final String id() {
        return id;
    }

    /** The stored planes, data first. */
    public final List<Plane> planes() {
        return planes;
    }

    /** Shape of plane {@code plane} for one row of {@code k} elements (k a multiple of {@link #BLOCK}). */
    public abstract long[] planeRowShape(int plane, int k);

    /** Storage bits per weight for rows of {@code k} elements, all planes included. */
    public final double bitsPerWeight(int k) {
        long bytes = 0;
        for (int p = 0; p < planes.size(); p++) {
            bytes += rowBytes(p, k);
        }
        return 8.0 * bytes / k;
    }

    /** Bytes of plane {@code p} per row of {@code k} elements. */
    final long rowBytes(int p, int k) {
        return Arrays.stream(planeRowShape(p, k)).reduce(1, (a, b) -> a * b) * planes.get(p).dtype().byteSize();
    }

    /**
     * Quantizes {@code src[off .. off + k)} into row {@code row} of {@code dst} (k = {@code dst.k()}).
     * Throws {@link MarbleException} for a value that is not finite or beyond the format's range.
     */
    public final void quantizeRow(float[] src, int off, QuantizedTensor dst, long row) {
        for (int i = off; i < off + dst.k(); i++) {
            if (!Float.isFinite(src[i])) {
                throw new MarbleException("value " + src[i] + " at column " + (i - off) + " is not finite");
            }
        }
        quantizeFinite(src, off, dst, row);
    }

    /** {@link #quantizeRow} on values already checked to be finite. */
    abstract void quantizeFinite(float[] src, int off, QuantizedTensor dst, long row);

    /**
     * Decodes blocks [{@code block}, {@code block + count}) of row {@code row} into
     * {@code dst[off .. off + count · BLOCK)}: the scalar reference of a kernel's panel decoder.
     */
    public abstract void dequantizeBlocks(QuantizedTensor q, long row, int block, int count, float[] dst, int off);

    /** Decodes the whole row {@code row} (k elements) into {@code dst[off ..]}. */
    public final void dequantizeRow(QuantizedTensor q, long row, float[] dst, int off) {
        dequantizeBlocks(q, row, 0, q.blocksPerRow(), dst, off);
    }

    /** The formats this build reads and writes. */
    public static List<QuantFormat> all() {
        return List.of(Q8_0.INSTANCE, Q4_0.INSTANCE, Q4_K.INSTANCE);
    }

    /** The format called {@code id} (case-insensitive), or a one-line error listing the known ones. */
    public static QuantFormat parse(String id) {
        String s = id.toLowerCase(Locale.ROOT);
        for (QuantFormat f : all()) {
            if (f.id().equals(s)) {
                return f;
            }
        }
        throw new MarbleException("unknown quantization type '" + id + "' (known: "
                + String.join(", ", all().stream().map(QuantFormat::id).toList()) + ")");
    }

    /**
     * Whether a weight of this shape can be quantized: a Linear [N, K] or a conv [OC, IC, KH, KW] with
     * K (IC) a positive multiple of {@link #BLOCK} and no empty dimension.
     */
    public static boolean quantizable(long[] shape) {
        if (shape.length != 2 && shape.length != 4) {
            return false;
        }
        for (long d : shape) {
            if (d <= 0) {
                return false;
            }
        }
        return shape[1] % BLOCK == 0 && shape[1] <= Integer.MAX_VALUE - BLOCK;
    }

    @Override
    public String toString() {
        return id();
    }

    // ---------------------------------------------------------------- shared scalar helpers

    /** float → IEEE half (round to nearest even), rejecting a scale the half format cannot hold. */
    static short toHalf(float v, String what) {
        short h = Float.floatToFloat16(v);
        if (!Float.isFinite(Float.float16ToFloat(h))) {
            throw new MarbleException(what + " " + v + " overflows the F16 range of " + Float.float16ToFloat((short) 0x7bff));
        }
        return h;
    }

    static int clamp(int v, int lo, int hi) {
        return Math.max(lo, Math.min(hi, v));
    }

    /** 32 4-bit codes as 16 bytes at {@code at}: byte j = q_j | q_(j+16) &lt;&lt; 4 (ggml's order). */
    static void packNibbles(int[] q, MemorySegment data, long at) {
        for (int j = 0; j < BLOCK / 2; j++) {
            data.set(ValueLayout.JAVA_BYTE, at + j, (byte) (q[j] | q[j + BLOCK / 2] << 4));
        }
    }

    /** The 16 bytes at {@code at} as 32 values code · d + m into {@code dst[o .. o + 32)}. */
    static void unpackNibbles(MemorySegment data, long at, float d, float m, float[] dst, int o) {
        for (int j = 0; j < BLOCK / 2; j++) {
            int v = data.get(ValueLayout.JAVA_BYTE, at + j);
            dst[o + j] = (v & 0xf) * d + m;
            dst[o + j + BLOCK / 2] = ((v >> 4) & 0xf) * d + m;
        }
    }
}
