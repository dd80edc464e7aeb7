package dev.marble.tensors.kernels;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** The scalar twin of {@link Attention}: one query row at a time, a full softmax over the keys. */
final class AttentionScalar {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private AttentionScalar() {
    }

    static void forward(Tensor q, Tensor k, Tensor v, int heads, float scale, boolean causal, Tensor out) {
        int b = q.size(0);
        int lq = q.size(1);
        int lk = k.size(1);
        int c = q.size(2);
        int d = c / heads;
        MemorySegment qs = q.data();
        MemorySegment ks = k.data();
        MemorySegment vs = v.data();
        MemorySegment os = out.data();
        Parallel.forChunks(b * heads * lq, (chunk, r0, r1) -> {
            float[] s = new float[lk];
            float[] acc = new float[d];
            for (int r = r0; r < r1; r++) {
                int bi = r / (heads * lq);
                int h = (r / lq) % heads;
                int i = r % lq;
                long qbase = ((long) bi * lq + i) * c + (long) h * d;
                int keys = causal ? i + 1 : lk;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < keys; j++) {
                    long kbase = ((long) bi * lk + j) * c + (long) h * d;
                    float dot = 0f;
                    for (int e = 0; e < d; e++) {
                        dot += qs.getAtIndex(F, qbase + e) * ks.getAtIndex(F, kbase + e);
                    }
                    s[j] = dot * scale;
                    max = Math.max(max, s[j]);
                }
                float sum = 0f;
                for (int j = 0; j < keys; j++) {
                    s[j] = (float) Math.exp(s[j] - max);
                    sum += s[j];
                }
                java.util.Arrays.fill(acc, 0f);
                for (int j = 0; j < keys; j++) {
                    long vbase = ((long) bi * lk + j) * c + (long) h * d;
                    float p = s[j];
                    for (int e = 0; e < d; e++) {
                        acc[e] += p * vs.getAtIndex(F, vbase + e);
                    }
                }
                float inv = 1f / sum;
                for (int e = 0; e < d; e++) {
                    os.setAtIndex(F, qbase + e, acc[e] * inv);
                }
            }
        });
    }
}
