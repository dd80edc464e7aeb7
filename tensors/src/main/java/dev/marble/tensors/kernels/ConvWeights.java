package dev.marble.tensors.kernels;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantizedTensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A conv2d weight [OC, IC, KH, KW] in its storage dtype (F32, F16 or BF16), plus an F32 bias [OC],
 * packed once at load into the order the vector kernel reads:
 *
 * <pre>
 *   [OCB = ⌈OC/NR⌉][ICB = ⌈ICpad/KC⌉][KH][KW][kcs][NR]     ICpad = IC rounded up to 32
 *   weight (o, c, y, x) sits at ocb = o / NR, j = o % NR, icb = c / KC, i = c % KC
 *   kcs = min(KC, ICpad − icb·KC): only the last input-channel block is shorter
 * </pre>
 *
 * NR = 2 vectors of output channels (the micro-kernel's width); zero padding fills the channels
 * beyond OC and IC. One (ocb, icb) "slab" is contiguous: KH·KW·kcs·NR elements, decoded to F32 as a
 * whole into per-thread scratch by the kernel ({@link Conv2dFormat#decode}) and reused by every
 * output tile of a band. KC is chosen so that a decoded slab is ~36 KB (KC = 64 for 3×3 at AVX2,
 * the whole input for most 1×1).
 *
 * <p>A block-quantized weight ({@link #packQuantized}, IC a multiple of 32) stays quantized, as
 * {@link QuantPanels}: one GEMM-like panel with K = IC per (ocb, tap t), panel index ocb·KH·KW + t.
 * Slab (ocb, icb) is then, for each tap t, rows [icb·KC, icb·KC + kcs) of panel (ocb, t), decoded to
 * the same [KH][KW][kcs][NR] order.
 */
public final class ConvWeights {
    /** Input channels are padded to a multiple of this (also the q8_0/q4_0 block length). */
    static final int IC_ALIGN = 32;
    /** Target floats in one decoded slab: 36 KB measured faster than 18 or 72 KB. */
    private static final int SLAB_FLOATS = 9216;
    /** Most input channels per slab (1×1 convs): keeps a band's A per slab small enough for L2. */
    private static final int MAX_KC = 256;

    /** The dense format, or null for a quantized weight. */
    private final Conv2dFormat format;
    /** The quantized format, or null for a dense weight. */
    private final QuantPanels quant;
    private final DType dtype;
    private final String formatName;
    private final int oc;
    private final int ic;
    private final int kh;
    private final int kw;
    private final int nr;
    private final int kc;
    private final int icPad;
    private final int ocBlocks;
    private final int icBlocks;
    /** The packed weight, see the class comment. */
    private final MemorySegment data;
    /** [OC] F32, or null. */
    private final float[] bias;
    /** [OCB·NR] F32, zero where there is no bias or no channel. */
    private final float[] biasPadded;

    private ConvWeights(Conv2dFormat format, QuantPanels quant, DType dtype, String formatName, int oc, int ic, int kh,
            int kw, int nr, int kc, MemorySegment data, float[] bias) {
        this.format = format;
        this.quant = quant;
        this.dtype = dtype;
        this.formatName = formatName;
        this.oc = oc;
        this.ic = ic;
        this.kh = kh;
        this.kw = kw;
        this.nr = nr;
        this.kc = kc;
        this.icPad = roundUp(ic, IC_ALIGN);
        this.ocBlocks = (oc + nr - 1) / nr;
        this.icBlocks = (icPad + kc - 1) / kc;
        this.data = data;
        this.bias = bias;
        this.biasPadded = new float[ocBlocks * nr];
        if (bias != null) {
            System.arraycopy(bias, 0, biasPadded, 0, oc);
        }
    }

    /** Packs weight [OC, IC, KH, KW] and bias [OC] (may be null) into {@code arena}. */
    public static ConvWeights pack(Tensor weight, Tensor bias, Arena arena) {
        Conv2dFormat format = Conv2dFormat.of(weight.dtype());
        if (weight.rank() != 4 || weight.numel() == 0) {
            throw new MarbleException("conv weight must be a non-empty [OC, IC, KH, KW], got " + weight);
        }
        int oc = weight.size(0);
        int ic = weight.size(1);
        int kh = weight.size(2);
        int kw = weight.size(3);
        if (bias != null && (bias.rank() != 1 || bias.dim(0) != oc)) {
            throw new MarbleException("conv bias must be [" + oc + "], got " + bias);
        }
        int nr = 2 * Simd.lanes();
        int kk = kh * kw;
        int icPad = roundUp(ic, IC_ALIGN);
        int kc = chooseKc(icPad, kk, nr);
        int ocBlocks = (oc + nr - 1) / nr;
        long elems = (long) ocBlocks * nr * icPad * kk;
        int es = format.elementBytes();
        MemorySegment packed = arena.allocate(elems * es, Tensor.ALIGNMENT); // zeroed: the padding
        try (Arena tmp = Arena.ofConfined()) {
            MemorySegment src = weight.contiguous(tmp).data();
            // Slab by slab, so the scattered writes stay within one L1-sized slab: for output channel o
            // the slab's channels are one contiguous source run of kc·KH·KW elements, and in the packed
            // order input channel i sits NR apart and tap t kcs·NR apart.
            for (int ocb = 0; ocb < ocBlocks; ocb++) {
                for (int icb = 0; icb * kc < ic; icb++) {
                    int kcs = Math.min(kc, icPad - icb * kc);
                    int real = Math.min(kc, ic - icb * kc);
                    long slab = slabStart(ocb, icb, kk, icPad, kc, nr);
                    for (int j = 0; j < nr && ocb * nr + j < oc; j++) {
                        long s0 = ((long) (ocb * nr + j) * ic + (long) icb * kc) * kk;
                        for (int i = 0; i < real; i++) {
                            for (int t = 0; t < kk; t++) {
                                long d = slab + ((long) t * kcs + i) * nr + j;
                                long sIdx = s0 + (long) i * kk + t;
                                if (es == 2) {
                                    packed.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, d,
                                            src.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, sIdx));
                                } else {
                                    packed.setAtIndex(ValueLayout.JAVA_INT_UNALIGNED, d,
                                            src.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, sIdx));
                                }
                            }
                        }
                    }
                }
            }
        }
        MappedPages.release(weight);
        return new ConvWeights(format, null, weight.dtype(), weight.dtype().safetensorsName(), oc, ic, kh, kw, nr, kc,
                packed, bias == null ? null : bias.toFloatArray());
    }

    /**
     * Packs a quantized weight [OC, IC, KH, KW] (IC a multiple of 32) and bias [OC] (may be null) into
     * {@code arena}, still quantized: as many bytes as its planes, plus the zero columns of a ragged
     * last output-channel block.
     */
    public static ConvWeights packQuantized(QuantizedTensor q, Tensor bias, Arena arena) {
        long[] s = q.shape();
        if (s.length != 4) {
            throw new MarbleException("conv weight must be a non-empty [OC, IC, KH, KW], got " + q);
        }
        int oc = Math.toIntExact(s[0]);
        int ic = q.k();
        int kh = Math.toIntExact(s[2]);
        int kw = Math.toIntExact(s[3]);
        if (bias != null && (bias.rank() != 1 || bias.dim(0) != oc)) {
            throw new MarbleException("conv bias must be [" + oc + "], got " + bias);
        }
        QuantPanels codec = QuantPanels.of(q.format());
        int nr = 2 * Simd.lanes();
        int taps = kh * kw;
        int panels = Math.multiplyExact((oc + nr - 1) / nr, taps);
        MemorySegment packed = arena.allocate(Math.multiplyExact(panels, codec.panelBytes(ic)), Tensor.ALIGNMENT);
        Parallel.forChunks(panels, (chunk, p0, p1) -> codec.pack(q, taps, packed, p0, p1));
        for (int p = 0; p < q.format().planes().size(); p++) {
            MappedPages.release(q.plane(p));
        }
        return new ConvWeights(null, codec, q.plane(0).dtype(), q.format().id(), oc, ic, kh, kw, nr,
                chooseKc(ic, taps, nr), packed, bias == null ? null : bias.toFloatArray());
    }

    /** KC: input channels per slab, a multiple of 32, for a slab of {@code taps} × KC × nr floats. */
    private static int chooseKc(int icPad, int taps, int nr) {
        return Math.min(icPad, Math.clamp(SLAB_FLOATS / (taps * nr) / IC_ALIGN * IC_ALIGN, IC_ALIGN, MAX_KC));
    }

    private static long slabStart(int ocb, int icb, int kk, int icPad, int kc, int nr) {
        return ((long) ocb * icPad + (long) icb * kc) * kk * nr;
    }

    private static int roundUp(int v, int m) {
        return (v + m - 1) / m * m;
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
        return formatName;
    }

    public int outChannels() {
        return oc;
    }

    public int inChannels() {
        return ic;
    }

    public int kernelHeight() {
        return kh;
    }

    public int kernelWidth() {
        return kw;
    }

    /** Bias for output channel o, 0 when there is none. */
    public float bias(int o) {
        return bias == null ? 0f : bias[o];
    }

    public boolean hasBias() {
        return bias != null;
    }

    /** Bytes of packed weight held (storage format, including the channel padding). */
    public long byteSize() {
        return data.byteSize();
    }

    /** W[o, i, y, x] widened to float: the scalar path and tests. */
    public float get(int o, int i, int y, int x) {
        if (o < 0 || o >= oc || i < 0 || i >= ic || y < 0 || y >= kh || x < 0 || x >= kw) {
            throw new MarbleException("conv weight index [" + o + ", " + i + ", " + y + ", " + x + "] out of bounds for ["
                    + oc + ", " + ic + ", " + kh + ", " + kw + "]");
        }
        if (quant != null) {
            return quant.get(data, ic, i, ((o / nr) * kh * kw + y * kw + x) * nr + o % nr);
        }
        int icb = i / kc;
        int kcs = slabChannels(icb);
        long idx = slabStart(o / nr, icb, kh * kw, icPad, kc, nr) + ((long) (y * kw + x) * kcs + i % kc) * nr + o % nr;
        return format.get(data, idx);
    }

    // ---- what the vector kernel reads ----

    /** Output channels per block (NR). */
    int blockWidth() {
        return nr;
    }

    /** Input channels per full slab (KC). */
    int channelsPerSlab() {
        return kc;
    }

    int outBlocks() {
        return ocBlocks;
    }

    int inBlocks() {
        return icBlocks;
    }

    /** Stored input channels (kcs) of slab column icb: KC, or less for the last one. */
    int slabChannels(int icb) {
        return Math.min(kc, icPad - icb * kc);
    }

    /** Widens slab (ocb, icb), [KH][KW][kcs][NR], into dst from index off. */
    void decodeSlab(int ocb, int icb, float[] dst, int off) {
        int taps = kh * kw;
        int kcs = slabChannels(icb);
        if (quant == null) {
            format.decode(data, slabStart(ocb, icb, taps, icPad, kc, nr), taps * kcs * nr, dst, off);
            return;
        }
        for (int t = 0; t < taps; t++) {
            quant.decode(data, ic, ocb * taps + t, icb * kc, kcs, dst, off + t * kcs * nr);
        }
    }

    /** [OCB·NR] bias, zero-padded. */
    float[] paddedBias() {
        return biasPadded;
    }

    MemorySegment packedData() {
        return data;
    }
}
