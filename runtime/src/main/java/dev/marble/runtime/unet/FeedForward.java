package dev.marble.runtime.unet;

import dev.marble.runtime.nn.Linear;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Activation;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;

/**
 * diffusers {@code FeedForward} with activation "geglu" (mult 4): net.0 = GEGLU (proj D → 2F, then
 * hidden·gelu(gate) with [hidden | gate] the two halves), net.1 = dropout, net.2 = Linear F → D.
 * Rows are independent, so the tokens go through in chunks: the 2F-wide intermediate is the largest
 * activation of the UNet (SD 1.5, 64×64, batch 2: 8192 × 2560 floats = 84 MB unchunked). A chunk holds
 * up to 1024 rows and about 8 MB, so that it stays below the activations around it at every level.
 */
final class FeedForward {
    private static final int MULT = 4; // diffusers FeedForward default, as BasicTransformerBlock builds it
    private static final int CHUNK_ROWS = 1024; // large enough to keep the GEMM efficient
    /** Bytes of the 2F-wide chunk: fewer rows for wider layers (SD 1.5's 1280 channels make 40 KB rows). */
    private static final long CHUNK_BYTES = 8L << 20;
    /** No fewer rows than this per chunk, whatever the width. */
    private static final int MIN_ROWS = 128;

    private final Linear proj; // net.0.proj: [2F, D]
    private final Linear out; // net.2: [D, F]

    private FeedForward(Linear proj, Linear out) {
        this.proj = proj;
        this.out = out;
    }

    static FeedForward load(WeightScope w, int dim, Arena arena) {
        int inner = dim * MULT;
        return new FeedForward(Linear.loadMatrix(w.at("net").at(0).at("proj"), dim, 2 * inner, true, arena),
                Linear.loadMatrix(w.at("net").at(2), inner, dim, true, arena));
    }

    /** x [B, L, D] → a new workspace tensor [B, L, D]. */
    Tensor forward(Workspace ws, Tensor x) {
        int dim = out.outFeatures();
        long rows = x.numel() / dim;
        long rowBytes = 4L * proj.outFeatures();
        long chunk = Math.min(rows, Math.max(MIN_ROWS, Math.min(CHUNK_ROWS, CHUNK_BYTES / rowBytes)));
        Tensor y = ws.take(DType.F32, x.shape()); // [B, L, D]
        Tensor p = ws.take(DType.F32, chunk, proj.outFeatures()); // [chunk, 2F]
        Tensor g = ws.take(DType.F32, chunk, out.inFeatures()); // [chunk, F]
        Tensor x2 = x.reshape(rows, dim);
        Tensor y2 = y.reshape(rows, dim);
        for (long r0 = 0; r0 < rows; r0 += chunk) {
            long n = Math.min(chunk, rows - r0);
            Tensor pc = p.slice(0, 0, n);
            Tensor gc = g.slice(0, 0, n);
            proj.forward(x2.slice(0, r0, r0 + n), pc);
            Activation.geglu(pc, gc);
            out.forward(gc, y2.slice(0, r0, r0 + n));
        }
        ws.give(g);
        ws.give(p);
        return y;
    }
}
