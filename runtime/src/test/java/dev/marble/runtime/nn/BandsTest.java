package dev.marble.runtime.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.WeightScope;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Convolutions computed in bands of rows give exactly the sums of the whole-image call. */
class BandsTest {
    private static Tensor random(Arena arena, Random r, long... shape) {
        Tensor t = Tensor.allocate(arena, DType.F32, shape);
        for (long i = 0; i < t.numel(); i++) {
            t.data().setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) r.nextGaussian());
        }
        return t;
    }

    private static WeightScope conv(Arena arena, Random r, String prefix, int in, int out) {
        return WeightScope.root(new MapSource(Map.of(prefix + "weight", random(arena, r, out, in, 3, 3),
                prefix + "bias", random(arena, r, out))));
    }

    private static Tensor copyIn(Workspace ws, Tensor t) {
        Tensor c = ws.take(DType.F32, t.shape());
        t.copyTo(c);
        return c;
    }

    @Test
    void upsampleInBandsEqualsTheWholeMap() {
        Random r = new Random(3);
        try (Arena arena = Arena.ofShared(); Workspace ws = new Workspace()) {
            for (int c : new int[] {6, 17}) { // 17 channels: the Winograd path at every vector width
                Upsample2D up = Upsample2D.load(conv(arena, r, "conv.", c, c), c, arena);
                Tensor x = random(arena, r, 2, 7, 5, c);
                Tensor whole = up.forward(ws, copyIn(ws, x)); // small: upsampled whole
                float[] expected = whole.toFloatArray();
                ws.give(whole);
                for (int band : new int[] {1, 2, 3, 5, 13, 14, 100}) {
                    Tensor banded = up.forwardInBands(ws, copyIn(ws, x), band);
                    assertArrayEquals(expected, banded.toFloatArray(), c + " channels in bands of " + band + " rows");
                    ws.give(banded);
                }
            }
        }
    }

    @Test
    void aNarrowingConvWritesOverItsInputExactly() {
        Random r = new Random(4);
        int[][] channels = {{8, 4}, {5, 3}, {3, 2}, {9, 8}};
        try (Arena arena = Arena.ofShared(); Workspace ws = new Workspace()) {
            for (int[] c : channels) {
                Conv2dLayer layer = Conv2dLayer.load(conv(arena, r, "", c[0], c[1]), c[0], c[1], 3, 1, 1, arena);
                Tensor x = random(arena, r, 2, 11, 6, c[0]);
                Tensor whole = layer.forward(ws, x);
                float[] expected = whole.toFloatArray();
                ws.give(whole);
                for (int band : new int[] {1, 2, 4, 11, 50}) {
                    Tensor over = layer.forwardOverInput(ws, copyIn(ws, x), band);
                    assertEquals(c[1], over.dim(3));
                    assertArrayEquals(expected, over.toFloatArray(), c[0] + "→" + c[1] + " in bands of " + band);
                    ws.give(over);
                }
            }
        }
    }
}
