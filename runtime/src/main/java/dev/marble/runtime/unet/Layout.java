package dev.marble.runtime.unet;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** NCHW ↔ NHWC at the model's edges (public methods speak NCHW like diffusers; the inside is channels-last). */
final class Layout {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private Layout() {
    }

    /** x [B, C, H, W] (any float dtype, any strides) → a new workspace tensor [B, H, W, C] F32. */
    static Tensor toNhwc(Workspace ws, Tensor x) {
        if (x.rank() != 4) {
            throw new MarbleException("expected an NCHW tensor [B, C, H, W], got " + x);
        }
        int b = x.size(0);
        int c = x.size(1);
        int h = x.size(2);
        int w = x.size(3);
        float[] src = x.toFloatArray(); // logical NCHW order
        Tensor out = ws.take(DType.F32, b, h, w, c); // [B, H, W, C]
        MemorySegment o = out.data();
        int hw = h * w;
        for (int bi = 0; bi < b; bi++) {
            for (int ci = 0; ci < c; ci++) {
                int s = (bi * c + ci) * hw;
                long d = (long) bi * hw * c + ci;
                for (int p = 0; p < hw; p++) {
                    o.setAtIndex(F32, d + (long) p * c, src[s + p]);
                }
            }
        }
        return out;
    }

    /** x [B, H, W, C] F32 contiguous → a new workspace tensor [B, C, H, W]. */
    static Tensor toNchw(Workspace ws, Tensor x) {
        int b = x.size(0);
        int h = x.size(1);
        int w = x.size(2);
        int c = x.size(3);
        MemorySegment s = x.data();
        Tensor out = ws.take(DType.F32, b, c, h, w); // [B, C, H, W]
        MemorySegment o = out.data();
        int hw = h * w;
        for (int bi = 0; bi < b; bi++) {
            for (int p = 0; p < hw; p++) {
                long src = ((long) bi * hw + p) * c;
                for (int ci = 0; ci < c; ci++) {
                    o.setAtIndex(F32, ((long) bi * c + ci) * hw + p, s.getAtIndex(F32, src + ci));
                }
            }
        }
        return out;
    }
}
