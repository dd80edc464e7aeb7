package dev.marble.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.runtime.schedulers.GoldenCase;
import dev.marble.tensors.DType;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import java.lang.foreign.Arena;
import java.util.Random;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/** The model calls of a generation reuse their scratch: a repeated call allocates nothing new. */
class ScratchMemoryTest {
    private static Tensor random(Arena arena, long... shape) {
        Tensor t = Tensor.allocate(arena, DType.F32, shape);
        Random r = new Random(5);
        for (long i = 0; i < t.numel(); i++) {
            t.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) r.nextGaussian());
        }
        return t;
    }

    /** Runs {@code call} three times in one workspace; the second and third allocate nothing and agree. */
    private static void repeatsFree(Function<Workspace, Tensor> call) {
        try (Workspace ws = new Workspace()) {
            Tensor first = call.apply(ws);
            float[] expected = first.toFloatArray();
            ws.give(first);
            long allocated = ws.allocatedBytes();
            for (int i = 0; i < 2; i++) {
                Tensor again = call.apply(ws);
                assertArrayEquals(expected, again.toFloatArray());
                ws.give(again);
                assertEquals(allocated, ws.allocatedBytes(), "call " + (i + 2) + " allocated");
            }
            assertTrue(ws.highWaterBytes() >= ws.peakLiveBytes());
        }
    }

    @Test
    void unetAndVaeCallsRepeatWithoutAllocating() {
        try (Marble m = Marble.load(GoldenCase.goldenDir().resolve("models/sd15-tiny")); Arena arena = Arena.ofShared()) {
            int c = m.unet().config().inChannels();
            Tensor sample = random(arena, 2, c, 16, 24);
            Tensor ctx = random(arena, 2, 77, m.unet().config().crossAttentionDim().get(0));
            repeatsFree(ws -> m.unet().forward(ws, sample, new float[] {321f}, ctx));
            Tensor z = random(arena, 1, m.vae().config().latentChannels(), 16, 16);
            repeatsFree(ws -> m.vae().decode(ws, z));
        }
    }
}
