package dev.marble.tensors.kernels;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
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
 */
public final class ConvWeights {
    /** Input channels are padded to a multiple of this (also the q8_0/q4_0 block length). */
    static final int IC_ALIGN = 32;
    /** Target floats in one decoded slab: 36 KB measured faster than 18 or 72 KB. */
    private static final int SLAB_FLOATS = 9216;
    /** Most input channels per slab (1×1 convs): keeps a band's A per slab small enough for L2. */
    private static final int MAX_KC = 256;

    private final Conv2dFormat format;
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

    private ConvWeights(Conv2dFormat format, int oc, int ic, int kh, int kw, int nr, int kc, MemorySegment data,
            float[] bias) {
        this.format = format;
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
        int kc = Math.min(icPad, Math.clamp(SLAB_FLOATS / (kk * nr) / IC_ALIGN * IC_ALIGN, IC_ALIGN, MAX_KC));
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
        return new ConvWeights(format, oc, ic, kh, kw, nr, kc, packed, bias == null ? null : bias.toFloatArray());
    }

    private static long slabStart(int ocb, int icb, int kk, int icPad, int kc, int nr) {
        return ((long) ocb * icPad + (long) icb * kc) * kk * nr;
    }

    private static int roundUp(int v, int m) {
        return (v + m - 1) / m * m;
    }

    public DType dtype() {
        return format.dtype();
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

    /** Bytes of packed weight held (storage dtype, including the channel padding). */
    public long byteSize() {
        return data.byteSize();
    }

    /** W[o, i, y, x] widened to float: the scalar path and tests. */
    public float get(int o, int i, int y, int x) {
        if (o < 0 || o >= oc || i < 0 || i >= ic || y < 0 || y >= kh || x < 0 || x >= kw) {
            throw new MarbleException("conv weight index [" + o + ", " + i + ", " + y + ", " + x + "] out of bounds for ["
                    + oc + ", " + ic + ", " + kh + ", " + kw + "]");
        }
        int icb = i / kc;
        int kcs = slabChannels(icb);
        long idx = slabStart(o / nr, icb, kh * kw, icPad, kc, nr) + ((long) (y * kw + x) * kcs + i % kc) * nr + o % nr;
        return format.get(data, idx);
    }

    // ---- what the vector kernel reads ----

    Conv2dFormat format() {
        return format;
    }

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
        format.decode(data, slabStart(ocb, icb, kh * kw, icPad, kc, nr), kh * kw * slabChannels(icb) * nr, dst, off);
    }

    /** [OCB·NR] bias, zero-padded. */
    float[] paddedBias() {
        return biasPadded;
    }

    MemorySegment packedData() {
        return data;
    }
}
