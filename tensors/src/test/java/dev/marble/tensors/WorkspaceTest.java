package dev.marble.tensors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Placement, reuse and release of scratch buffers. */
class WorkspaceTest {
    private static final long MB = 1 << 20;

    /** A made-up model call: a chain of layers whose inputs die after their outputs are made, plus skips. */
    private static List<Long> call(Workspace ws) {
        List<Long> addresses = new ArrayList<>();
        List<Tensor> skips = new ArrayList<>();
        Tensor h = ws.take(DType.F32, 2, 64, 64, 4);
        addresses.add(h.data().address());
        long[] channels = {320, 320, 640, 1280, 640, 320, 960, 4};
        for (long c : channels) {
            Tensor n = ws.take(DType.F32, 2, 32, 32, c);
            Tensor t = ws.take(DType.F32, 2, c);
            addresses.add(n.data().address());
            addresses.add(t.data().address());
            ws.give(t);
            if (c == 640) {
                skips.add(h);
            } else {
                ws.give(h);
            }
            h = n;
        }
        for (Tensor s : skips) {
            ws.give(s);
        }
        ws.give(h);
        return addresses;
    }

    @Test
    void aSecondIdenticalCallAllocatesNothingAndReusesTheSameMemory() {
        try (Workspace ws = new Workspace()) {
            call(ws);
            long afterFirst = ws.allocatedBytes();
            List<Long> second = call(ws);
            assertEquals(afterFirst, ws.allocatedBytes(), "the second call allocated");
            assertEquals(second, call(ws), "the third call placed its buffers elsewhere");
            assertEquals(afterFirst, ws.allocatedBytes());
            assertTrue(ws.highWaterBytes() >= ws.peakLiveBytes());
        }
    }

    @Test
    void aFreedLargeBufferServesSmallerRequests() {
        try (Workspace ws = new Workspace()) {
            for (int run = 0; run < 2; run++) { // the first run sizes the block; the second shows the places in it
                Tensor a = ws.take(DType.F32, 64, MB / 4);  // 64 MB
                Tensor b = ws.take(DType.F32, 16, MB / 4);  // 16 MB, keeps the top above a
                ws.give(a);
                Tensor c = ws.take(DType.F32, 32, MB / 4);  // both fit where a was
                Tensor d = ws.take(DType.F32, 32, MB / 4);
                assertEquals(80 * MB, ws.highWaterBytes());
                if (run == 1) {
                    assertEquals(a.data().address(), c.data().address());
                    assertEquals(a.data().address() + 32 * MB, d.data().address());
                    assertEquals(a.data().address() + 64 * MB, b.data().address());
                }
                ws.give(b);
                ws.give(c);
                ws.give(d);
            }
            assertEquals(80 * MB, ws.peakLiveBytes());
        }
    }

    @Test
    void bestFitTakesTheSmallestGapThatHolds() {
        try (Workspace ws = new Workspace()) {
            for (int run = 0; run < 2; run++) {
                Tensor big = ws.take(DType.U8, 4096);
                Tensor sep1 = ws.take(DType.U8, 64);
                Tensor small = ws.take(DType.U8, 1024);
                Tensor sep2 = ws.take(DType.U8, 64);
                Tensor mid = ws.take(DType.U8, 2048);
                Tensor sep3 = ws.take(DType.U8, 64);
                long high = ws.highWaterBytes();
                long base = big.data().address();
                ws.give(big);
                ws.give(small);
                ws.give(mid);
                Tensor t = ws.take(DType.U8, 1500); // fits mid and big, not small
                Tensor u = ws.take(DType.U8, 1000); // small is the best fit
                if (run == 1) {
                    assertEquals(4096 + 64 + 1024 + 64, t.data().address() - base);
                    assertEquals(4096 + 64, u.data().address() - base);
                }
                assertEquals(high, ws.highWaterBytes());
                for (Tensor x : List.of(sep1, sep2, sep3, t, u)) {
                    ws.give(x);
                }
            }
        }
    }

    @Test
    void liveBuffersNeverOverlap() {
        Random r = new Random(7);
        try (Workspace ws = new Workspace()) {
            List<Tensor> live = new ArrayList<>();
            List<Integer> tags = new ArrayList<>();
            for (int op = 0; op < 2000; op++) {
                boolean take = live.isEmpty() || (live.size() < 40 && r.nextInt(100) < 55);
                if (take) {
                    DType dt = r.nextBoolean() ? DType.F32 : DType.U8;
                    long n = 1 + (r.nextInt(4) == 0 ? r.nextInt(50_000) : r.nextInt(3000));
                    Tensor t = ws.take(dt, n);
                    int tag = r.nextInt();
                    fill(t.data(), tag);
                    for (Tensor o : live) {
                        long a0 = t.data().address();
                        long b0 = o.data().address();
                        assertTrue(a0 + t.byteSize() <= b0 || b0 + o.byteSize() <= a0, "overlap at op " + op);
                    }
                    live.add(t);
                    tags.add(tag);
                } else {
                    int i = r.nextInt(live.size());
                    check(live.get(i).data(), tags.get(i), op);
                    ws.give(live.remove(i));
                    tags.remove(i);
                }
                if (op % 500 == 499) { // empty it now and then, so that the block is resized under live use
                    for (int i = 0; i < live.size(); i++) {
                        check(live.get(i).data(), tags.get(i), op);
                        ws.give(live.get(i));
                    }
                    live.clear();
                    tags.clear();
                }
            }
        }
    }

    private static void fill(MemorySegment s, int tag) {
        for (long i = 0; i + 4 <= s.byteSize(); i += 4) {
            s.set(ValueLayout.JAVA_INT_UNALIGNED, i, tag ^ (int) i);
        }
    }

    private static void check(MemorySegment s, int tag, int op) {
        for (long i = 0; i + 4 <= s.byteSize(); i += 4) {
            if (s.get(ValueLayout.JAVA_INT_UNALIGNED, i) != (tag ^ (int) i)) {
                throw new AssertionError("buffer overwritten by another one, found at op " + op);
            }
        }
    }

    @Test
    void givingBackWhatWasNotTakenFails() {
        try (Workspace ws = new Workspace(); Workspace other = new Workspace()) {
            Tensor a = ws.take(DType.F32, 8, 8);
            assertThrows(MarbleException.class, () -> other.give(a));
            assertThrows(MarbleException.class, () -> ws.give(a.slice(0, 1, 8)));
            ws.give(a);
            assertThrows(MarbleException.class, () -> ws.give(a));
        }
    }

    @Test
    void zerosAreZero() {
        try (Workspace ws = new Workspace()) {
            Tensor a = ws.take(DType.F32, 100);
            a.data().fill((byte) 1);
            ws.give(a);
            Tensor z = ws.zeros(DType.F32, 100);
            for (float v : z.toFloatArray()) {
                assertEquals(0f, v);
            }
            ws.give(z);
        }
    }
}
