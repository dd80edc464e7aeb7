package dev.marble.runtime.clip;

import dev.marble.runtime.nn.LayerNormLayer;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * transformers CLIPTextModel (the text tower of CLIP, SD's text encoder): token and position
 * embeddings, a stack of pre-LayerNorm causal transformer layers, a final LayerNorm. Immutable after
 * load and safe to share between threads; each call computes in the caller's {@link Workspace}.
 */
public final class ClipTextModel {
    /**
     * The outputs of one call. All three tensors are taken from the caller's workspace; give them back
     * with {@link #give(Workspace)} when done.
     *
     * @param lastHiddenState        [B, L, D] after the final LayerNorm
     * @param penultimateHiddenState [B, L, D] transformers' {@code hidden_states[-2]}: the input of the
     *                               last layer, before any final LayerNorm (SD clip skip)
     * @param pooledOutput           [B, D] lastHiddenState at each row's end-of-text token
     */
    public record Output(Tensor lastHiddenState, Tensor penultimateHiddenState, Tensor pooledOutput) {
        /** Returns the three tensors to {@code ws}. */
        public void give(Workspace ws) {
            ws.give(lastHiddenState);
            ws.give(penultimateHiddenState);
            ws.give(pooledOutput);
        }
    }

    /** transformers before 4.31 saved this eos_token_id; the pooled position is then argmax(ids). */
    private static final int LEGACY_EOS_TOKEN_ID = 2;

    private final ClipTextConfig config;
    private final ClipTextEmbeddings embeddings; // token [V, D], position [P, D]
    private final ClipEncoderLayer[] layers;     // encoder.layers.N
    private final LayerNormLayer finalLayerNorm; // [D]

    private ClipTextModel(ClipTextConfig config, ClipTextEmbeddings embeddings, ClipEncoderLayer[] layers,
            LayerNormLayer finalLayerNorm) {
        this.config = config;
        this.embeddings = embeddings;
        this.layers = layers;
        this.finalLayerNorm = finalLayerNorm;
    }

    /**
     * Loads the weights under scope {@code w} (the checkpoint's {@code text_model} prefix). Weights are
     * copied into {@code arena}, so the source may be closed afterwards; the model lives as long as
     * the arena.
     */
    public static ClipTextModel load(ClipTextConfig config, WeightScope w, Arena arena) {
        ClipEncoderLayer[] layers = new ClipEncoderLayer[config.numHiddenLayers()];
        WeightScope enc = w.at("encoder").at("layers");
        for (int i = 0; i < layers.length; i++) {
            layers[i] = ClipEncoderLayer.load(config, enc.at(i), arena);
        }
        return new ClipTextModel(config,
                ClipTextEmbeddings.load(config, w.at("embeddings"), arena),
                layers,
                LayerNormLayer.load(w.at("final_layer_norm"), config.hiddenSize(), config.layerNormEps(), arena));
    }

    public ClipTextConfig config() {
        return config;
    }

    /** Encodes token ids [B, L] given as an I64 or I32 tensor (what the tokenizer or a golden file holds). */
    public Output encode(Workspace ws, Tensor ids) {
        if (ids.rank() != 2 || (ids.dtype() != DType.I64 && ids.dtype() != DType.I32) || !ids.isContiguous()) {
            throw new MarbleException("text encoder: input ids must be a contiguous I64 or I32 tensor [B, L], got " + ids);
        }
        int b = ids.size(0);
        int l = ids.size(1);
        int[][] rows = new int[b][l];
        MemorySegment s = ids.data();
        for (int bi = 0; bi < b; bi++) {
            for (int i = 0; i < l; i++) {
                long idx = (long) bi * l + i;
                long v = ids.dtype() == DType.I64
                        ? s.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, idx)
                        : s.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, idx);
                rows[bi][i] = Math.clamp(v, -1, Integer.MAX_VALUE); // out-of-range ids fail below
            }
        }
        return encode(ws, rows);
    }

    /** Encodes token ids [B][L] (B ≥ 1, 1 ≤ L ≤ max_position_embeddings). */
    public Output encode(Workspace ws, int[][] ids) {
        checkIds(ids);
        // 1. embeddings
        Tensor h = embeddings.forward(ws, ids); // [B, L, D]
        // 2. encoder layers; the residual stream before the last layer is hidden_states[-2]
        Tensor penultimate = null;
        for (int i = 0; i < layers.length; i++) {
            if (i == layers.length - 1) {
                penultimate = ws.take(DType.F32, h.shape()); // [B, L, D]
                h.copyTo(penultimate);
            }
            layers[i].forward(ws, h);
        }
        // 3. final LayerNorm, in place
        finalLayerNorm.forward(h, h);
        // 4. pooled output: one row per sequence
        int b = ids.length;
        int l = ids[0].length;
        int d = config.hiddenSize();
        Tensor pooled = ws.take(DType.F32, b, d); // [B, D]
        for (int bi = 0; bi < b; bi++) {
            int p = pooledPosition(ids[bi]);
            MemorySegment.copy(h.data(), ((long) bi * l + p) * d * 4, pooled.data(), (long) bi * d * 4, d * 4L);
        }
        return new Output(h, penultimate, pooled);
    }

    /**
     * The final LayerNorm applied to another hidden state, e.g. the penultimate one (diffusers'
     * {@code clip_skip}). The result is taken from {@code ws}; {@code hidden} is left to the caller.
     */
    public Tensor applyFinalLayerNorm(Workspace ws, Tensor hidden) {
        return finalLayerNorm.forward(ws, hidden);
    }

    /**
     * transformers CLIPTextTransformer.forward: with the legacy eos_token_id 2 the pooled token is at
     * argmax(ids) (the first end-of-text, the largest id in the CLIP vocabulary); otherwise at the
     * first occurrence of eos_token_id (position 0 when there is none, as torch's argmax of zeros).
     */
    private int pooledPosition(int[] row) {
        int best = 0;
        if (config.eosTokenId() == LEGACY_EOS_TOKEN_ID) {
            for (int i = 1; i < row.length; i++) {
                if (row[i] > row[best]) {
                    best = i;
                }
            }
            return best;
        }
        for (int i = 0; i < row.length; i++) {
            if (row[i] == config.eosTokenId()) {
                return i;
            }
        }
        return best;
    }

    private void checkIds(int[][] ids) {
        if (ids == null || ids.length == 0 || ids[0] == null) {
            throw new MarbleException("text encoder: no token ids given");
        }
        int l = ids[0].length;
        if (l < 1 || l > config.maxPositionEmbeddings()) {
            throw new MarbleException("text encoder: sequence length " + l + " is outside 1.."
                    + config.maxPositionEmbeddings() + " (max_position_embeddings)");
        }
        for (int bi = 0; bi < ids.length; bi++) {
            if (ids[bi] == null || ids[bi].length != l) {
                throw new MarbleException("text encoder: row " + bi + " of the token ids does not have length " + l);
            }
            for (int v : ids[bi]) {
                if (v < 0 || v >= config.vocabSize()) {
                    throw new MarbleException("text encoder: token id " + v + " in row " + bi
                            + " is outside the vocabulary 0.." + (config.vocabSize() - 1));
                }
            }
        }
    }
}
