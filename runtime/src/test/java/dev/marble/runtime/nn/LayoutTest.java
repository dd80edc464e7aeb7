package dev.marble.runtime.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import java.lang.foreign.Arena;
import java.util.Locale;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class LayoutTest {
    private static Tensor random(Arena a, Random r, long... shape) {
        Tensor t = Tensor.allocate(a, DType.F32, shape);
        for (long i = 0; i < t.numel(); i++) {
            t.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i, r.nextFloat());
        }
        return t;
    }

    /** Shapes with ragged tiles on both axes, single rows/columns and batches. */
    @ParameterizedTest
    @CsvSource({"1,1,1,1", "1,3,5,7", "2,33,31,3", "3,16,64,64", "1,4,96,128", "2,65,1,40", "1,3,100,97", "2,31,40,40",
            "1,40,3,11", "1,300,2,3"})
    void matchesThePermutedView(int b, int c, int h, int w) {
        try (Arena a = Arena.ofShared(); Workspace ws = new Workspace()) {
            Tensor nchw = random(a, new Random(b * 1000 + c * 100 + h * 10 + w), b, c, h, w);
            Tensor nhwc = Layout.toNhwc(ws, nchw);
            assertArrayEquals(nchw.permute(0, 2, 3, 1).toFloatArray(), nhwc.toFloatArray());
            Tensor back = Layout.toNchw(ws, nhwc);
            assertArrayEquals(nchw.toFloatArray(), back.toFloatArray());
        }
    }

    /** toNhwc also takes a model input as it comes: another float dtype, or a strided view. */
    @Test
    void toNhwcWidensF16AndStridedInput() {
        try (Arena a = Arena.ofShared(); Workspace ws = new Workspace()) {
            Tensor f16 = Tensor.allocate(a, DType.F16, 2, 3, 4, 5);
            Tensor f32 = random(a, new Random(5), 2, 3, 4, 5).reshape(2 * 3 * 4 * 5);
            for (int i = 0; i < f32.numel(); i++) {
                f16.reshape(-1).setFloat(f32.getFloat(i), i);
            }
            assertArrayEquals(f16.permute(0, 2, 3, 1).toFloatArray(), Layout.toNhwc(ws, f16).toFloatArray());
            Tensor strided = random(a, new Random(6), 2, 4, 5, 3).permute(0, 3, 1, 2); // [2, 3, 4, 5] view
            assertArrayEquals(strided.permute(0, 2, 3, 1).toFloatArray(), Layout.toNhwc(ws, strided).toFloatArray());
        }
    }

    @Test
    void rejectsWrongShapesAndDtypes() {
        try (Arena a = Arena.ofShared()) {
            Tensor x = Tensor.allocate(a, DType.F32, 1, 2, 3, 4);
            assertThrows(MarbleException.class, () -> Layout.nchwToNhwc(x, Tensor.allocate(a, DType.F32, 1, 2, 3, 4)));
            assertThrows(MarbleException.class, () -> Layout.nchwToNhwc(Tensor.allocate(a, DType.F16, 1, 2, 3, 4),
                    Tensor.allocate(a, DType.F32, 1, 3, 4, 2)));
            assertThrows(MarbleException.class, () -> Layout.nhwcToNchw(x.reshape(2, 3, 4),
                    Tensor.allocate(a, DType.F32, 2, 4, 3)));
            Layout.nchwToNhwc(x, Tensor.allocate(a, DType.F32, 1, 3, 4, 2));
        }
    }

    /** Rough throughput figures for the report (a wide activation, an image); not asserted. */
    @ParameterizedTest
    @CsvSource({"128,128,128", "3,512,512"})
    void throughput(int c, int h, int w) {
        try (Arena a = Arena.ofShared()) {
            Tensor nchw = Tensor.allocate(a, DType.F32, 1, c, h, w);
            Tensor nhwc = Tensor.allocate(a, DType.F32, 1, h, w, c);
            long toNhwc = Long.MAX_VALUE;
            long toNchw = Long.MAX_VALUE;
            for (int i = 0; i < 3; i++) {
                long t0 = System.nanoTime();
                Layout.nchwToNhwc(nchw, nhwc);
                long t1 = System.nanoTime();
                Layout.nhwcToNchw(nhwc, nchw);
                toNhwc = Math.min(toNhwc, t1 - t0);
                toNchw = Math.min(toNchw, System.nanoTime() - t1);
            }
            System.out.printf(Locale.ROOT, "Layout 1x%dx%dx%d: to NHWC %.2f ms (%.2f GB/s), to NCHW %.2f ms (%.2f GB/s)"
                    + " (bytes read + written)%n", c, h, w, toNhwc / 1e6, 2.0 * nchw.byteSize() / toNhwc,
                    toNchw / 1e6, 2.0 * nchw.byteSize() / toNchw);
        }
    }
}
