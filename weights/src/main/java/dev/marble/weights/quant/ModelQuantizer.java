package dev.marble.weights.quant;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.kernels.Convert;
import dev.marble.tensors.quant.QuantizedTensor;
import dev.marble.weights.SafetensorsWriter;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Builds one quantized safetensors file, tensor by tensor: each input tensor is quantized, narrowed to
 * F16 or passed through as its {@link QuantRules} decide, then {@link #write} writes the file
 * atomically. Only the output's own bytes live in {@code arena} (quantized planes and narrowed
 * copies); tensors kept as they are stay views of the input mapping, and the input is read one output
 * channel at a time, so no F32 copy of the model is ever made.
 */
public final class ModelQuantizer {
    /** Counts and sizes of what was added so far. */
    public record Stats(int quantized, int half, int kept, long bytesIn, long bytesOut) {
    }

    /** Elements converted per call, so a tensor of any size goes through int-sized chunks. */
    private static final int CHUNK = 1 << 24;
    /** Values at or beyond this round to infinity in F16. */
    private static final float HALF_OVERFLOW = 65520f;

    private final QuantRules rules;
    private final Arena arena;
    private final Map<String, Tensor> tensors = new LinkedHashMap<>();
    private final Map<String, String> metadata = new LinkedHashMap<>();
    private int quantized;
    private int half;
    private int kept;
    private long bytesIn;
    private long bytesOut;

    /** Output memory comes from {@code arena}, which must outlive {@link #write}; shared arenas quantize in parallel. */
    public ModelQuantizer(QuantRules rules, Arena arena) {
        this.rules = rules;
        this.arena = arena;
        metadata.put("format", "pt");
    }

    /** Adds a metadata entry to the output (e.g. from the input file). */
    public void putMetadata(String key, String value) {
        metadata.put(key, value);
    }

    /**
     * Adds tensor {@code t}, stored under {@code name}; the rules see {@code component} and
     * {@code ruleName} (the name within the component).
     */
    public QuantRules.Decision add(String component, String ruleName, String name, Tensor t) {
        QuantRules.Decision d = rules.decide(component, ruleName, t.shape());
        bytesIn += t.byteSize();
        switch (d.target()) {
            case QuantRules.Target.Quantize q -> {
                QuantizedTensor qt = QuantizedTensor.quantize(name, t, q.format(), arena);
                releasePages(t);
                QuantStorage.put(name, qt, tensors, metadata);
                bytesOut += qt.byteSize();
                quantized++;
            }
            case QuantRules.Target.Half h -> {
                Tensor out = toHalf(t, arena);
                if (out != t) {
                    releasePages(t);
                }
                put(name, out);
                if (out.dtype() == DType.F16) {
                    half++;
                } else {
                    kept++;
                }
            }
            case QuantRules.Target.Keep k -> {
                put(name, t);
                kept++;
            }
        }
        return d;
    }

    /**
     * Drops a memory-mapped input tensor's pages from the resident set once its output copy exists:
     * otherwise every page read while quantizing stays resident until the input is closed, on top of
     * the output (SD 1.5's F16 UNet: 1.7 GB).
     */
    private static void releasePages(Tensor t) {
        if (t.data().isMapped()) {
            t.data().unload();
        }
    }

    private void put(String name, Tensor t) {
        if (tensors.containsKey(name)) {
            throw new MarbleException("tensor '" + name + "' is added twice");
        }
        tensors.put(name, t);
        bytesOut += t.byteSize();
    }

    /** F32 narrowed to F16 in {@code arena}, unless a value would overflow; every other dtype as it is. */
    static Tensor toHalf(Tensor t, Arena arena) {
        if (t.dtype() != DType.F32) {
            return t;
        }
        Tensor src = t.contiguous(arena);
        long n = src.numel();
        MemorySegment s = src.data();
        for (long i = 0; i < n; i++) {
            if (Math.abs(s.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i)) >= HALF_OVERFLOW) {
                return t;
            }
        }
        Tensor out = Tensor.allocate(arena, DType.F16, src.shape());
        for (long i = 0; i < n; i += CHUNK) {
            Convert.f32ToF16(s, i * 4, out.data(), i * 2, (int) Math.min(CHUNK, n - i));
        }
        return out;
    }

    public Stats stats() {
        return new Stats(quantized, half, kept, bytesIn, bytesOut);
    }

    /** Writes everything added so far to {@code target} (temporary file, then an atomic rename). */
    public void write(Path target) {
        SafetensorsWriter.write(target, tensors, metadata);
    }
}
