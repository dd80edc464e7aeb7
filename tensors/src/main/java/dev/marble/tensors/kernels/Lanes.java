package dev.marble.tensors.kernels;

import jdk.incubator.vector.FloatVector;

/**
 * Horizontal sums in a fixed order. {@code reduceLanes(ADD)} leaves the order unspecified, and the
 * JIT's intrinsic and the interpreter's fallback do differ, so the same input could give results one
 * ulp apart depending on how warm the JVM is; a generation must not depend on that.
 */
final class Lanes {
    private Lanes() {
    }

    /** Lane 0 + lane 1 + … in index order, in float. */
    static float sum(FloatVector v) {
        float[] lanes = v.toArray();
        float s = 0f;
        for (float x : lanes) {
            s += x;
        }
        return s;
    }
}
