package dev.marble.tensors;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * Scratch memory for one generation. Buffers are recycled by exact byte size: a UNet step asks for
 * the same sizes every time, so after the first step a run allocates nothing new and resident
 * memory stays flat. Not thread-safe: each generation owns one. Closing it frees everything.
 */
public final class Workspace implements AutoCloseable {
    private final Arena arena = Arena.ofShared();
    private final Map<Long, ArrayDeque<MemorySegment>> free = new HashMap<>();
    private long allocatedBytes;
    private long liveBytes;
    private long peakLiveBytes;

    /** A tensor whose contents are undefined (recycled memory). */
    public Tensor take(DType dtype, long... shape) {
        long n = 1;
        for (long s : shape) {
            n = Math.multiplyExact(n, s);
        }
        long bytes = Math.max(1, n * dtype.byteSize());
        ArrayDeque<MemorySegment> q = free.get(bytes);
        MemorySegment seg = q == null ? null : q.poll();
        if (seg == null) {
            seg = arena.allocate(bytes, Tensor.ALIGNMENT);
            allocatedBytes += bytes;
        }
        liveBytes += bytes;
        peakLiveBytes = Math.max(peakLiveBytes, liveBytes);
        return Tensor.wrap(seg, dtype, shape);
    }

    /** A zero-filled tensor. */
    public Tensor zeros(DType dtype, long... shape) {
        Tensor t = take(dtype, shape);
        t.data().asSlice(0, t.byteSize()).fill((byte) 0);
        return t;
    }

    /** Returns a tensor taken from this workspace; the caller must not use it afterwards. */
    public void give(Tensor t) {
        MemorySegment seg = t.data();
        long bytes = Math.max(1, t.byteSize());
        if (seg.byteSize() != bytes) {
            seg = seg.asSlice(0, bytes);
        }
        free.computeIfAbsent(bytes, k -> new ArrayDeque<>()).push(seg);
        liveBytes -= bytes;
    }

    /** Total bytes ever allocated from the arena. */
    public long allocatedBytes() {
        return allocatedBytes;
    }

    /** Largest number of bytes handed out at once. */
    public long peakLiveBytes() {
        return peakLiveBytes;
    }

    @Override
    public void close() {
        arena.close();
    }
}
