package dev.marble.tensors.kernels;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.util.Arrays;

/** Argument checks shared by the kernel entry points. */
final class Checks {
    private Checks() {
    }

    /** Requires a contiguous F32 tensor with the given shape (-1 matches any size). */
    static void f32(String what, Tensor t, long... shape) {
        if (t.dtype() != DType.F32) {
            throw new MarbleException(what + ": expected F32, got " + t.dtype());
        }
        if (!t.isContiguous()) {
            throw new MarbleException(what + ": expected a contiguous tensor");
        }
        long[] s = t.shape();
        boolean ok = s.length == shape.length;
        for (int i = 0; ok && i < s.length; i++) {
            ok = shape[i] == -1 || shape[i] == s[i];
        }
        if (!ok) {
            throw new MarbleException(what + ": expected shape " + Arrays.toString(shape).replace("-1", "*")
                    + ", got " + Arrays.toString(s));
        }
    }
}
