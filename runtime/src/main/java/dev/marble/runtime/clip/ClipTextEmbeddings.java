package dev.marble.runtime.clip;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Convert;
import dev.marble.tensors.kernels.Elementwise;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * transformers CLIPTextEmbeddings: token embedding + absolute position embedding. The tables stay in
 * their file dtype (an F16 SD token table is 76 MB instead of 152 MB) and rows are widened to F32 as
 * they are looked up.
 */
final class ClipTextEmbeddings {
    private final Tensor tokenEmbedding;    // [vocab, D], F32/F16/BF16
    private final Tensor positionEmbedding; // [maxPositions, D], F32/F16/BF16

    private ClipTextEmbeddings(Tensor tokenEmbedding, Tensor positionEmbedding) {
        this.tokenEmbedding = tokenEmbedding;
        this.positionEmbedding = positionEmbedding;
    }

    static ClipTextEmbeddings load(ClipTextConfig c, WeightScope w, Arena arena) {
        return new ClipTextEmbeddings(
                copy(w.at("token_embedding").tensor("weight", c.vocabSize(), c.hiddenSize()), arena),
                copy(w.at("position_embedding").tensor("weight", c.maxPositionEmbeddings(), c.hiddenSize()), arena));
    }

    /** out [B, L, D] = token_embedding[ids] + position_embedding[0..L). ids are already range-checked. */
    Tensor forward(Workspace ws, int[][] ids) {
        int b = ids.length;
        int l = ids[0].length;
        int d = tokenEmbedding.size(1);
        // 1. token rows, widened straight into the output
        Tensor out = ws.take(DType.F32, b, l, d); // [B, L, D]
        for (int bi = 0; bi < b; bi++) {
            for (int i = 0; i < l; i++) {
                widenRow(tokenEmbedding, ids[bi][i], out.data(), ((long) bi * l + i) * d * 4);
            }
        }
        // 2. + positions 0..L-1, broadcast over the batch
        Tensor pos = ws.take(DType.F32, l, d); // [L, D]
        for (int i = 0; i < l; i++) {
            widenRow(positionEmbedding, i, pos.data(), (long) i * d * 4);
        }
        Elementwise.add(out, pos, out);
        ws.give(pos);
        return out;
    }

    /** Row r of a [N, D] table, widened to F32 at byte offset {@code dstOff} of {@code dst}. */
    private static void widenRow(Tensor table, int r, MemorySegment dst, long dstOff) {
        int d = table.size(1);
        long off = (long) r * d * table.dtype().byteSize();
        switch (table.dtype()) {
            case F32 -> MemorySegment.copy(table.data(), off, dst, dstOff, d * 4L);
            case F16 -> Convert.f16ToF32(table.data(), off, dst, dstOff, d);
            case BF16 -> Convert.bf16ToF32(table.data(), off, dst, dstOff, d);
            default -> throw new IllegalStateException(table.dtype().toString());
        }
    }

    /** A contiguous copy of an embedding table in the model's arena, in its own dtype. */
    private static Tensor copy(Tensor t, Arena arena) {
        DType dt = t.dtype();
        if (dt != DType.F32 && dt != DType.F16 && dt != DType.BF16) {
            throw new MarbleException("text encoder embeddings must be F32, F16 or BF16, got " + dt);
        }
        Tensor out = Tensor.allocate(arena, dt, t.shape());
        t.copyTo(out);
        return out;
    }
}
