package dev.marble.tensors;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Scratch memory for one generation stage. Not thread-safe: each generation owns its workspaces.
 * Closing one frees everything.
 *
 * <p>Buffers are placed by offset in one virtual address range, best fit among the free gaps (the
 * smallest gap that holds the request, the lowest such gap on ties), split as needed and merged with
 * free neighbours when given back; a request that fits no gap goes on top. So the range's high-water
 * mark stays close to the largest number of bytes live at once, whatever the mix of sizes. The
 * placement depends only on the sequence of requests, not on where memory exists.
 *
 * <p>Memory: a buffer that lies within the workspace's block is a slice of it. One that reaches past
 * the block gets memory of its own, freed as soon as it is given back; when nothing is live any more
 * after that, the block is replaced by one that spans the high-water mark. A model call repeats its
 * sequence of requests exactly, so from its second call on a UNet finds every buffer in the block and
 * allocates nothing, while a single call (a VAE decode) never holds more than its live buffers plus
 * the C heap's own slack. The block is allocated uninitialized, so it costs resident memory only as
 * far as later calls use it.
 */
public final class Workspace implements AutoCloseable {
    /** Buffers start at multiples of this (whole-vector loads; no false sharing between buffers). */
    private static final long GRAIN = Tensor.ALIGNMENT;

    /** A live buffer: its place in the range and, when it did not fit the block, its own memory. */
    private record Piece(long offset, long size, long bytes, Arena own, MemorySegment ownMemory) {
    }

    /** A free gap of the range, ordered by size then offset for best fit. */
    private record Gap(long offset, long size) implements Comparable<Gap> {
        @Override
        public int compareTo(Gap o) {
            int c = Long.compare(size, o.size);
            return c != 0 ? c : Long.compare(offset, o.offset);
        }
    }

    private final TreeSet<Gap> gapsBySize = new TreeSet<>();
    private final TreeMap<Long, Long> gapsByOffset = new TreeMap<>(); // offset -> size
    private final Map<Long, Piece> live = new HashMap<>(); // by address
    private long top;        // end of the highest live buffer or gap in use
    private long highWater;  // largest top so far
    private Arena blockArena;
    private MemorySegment block; // backs offsets [0, block.byteSize()), or null
    private boolean spilled;     // a buffer got its own memory since the block was last sized
    private long allocatedBytes;
    private long liveBytes;
    private long peakLiveBytes;
    private boolean closed;

    /** A tensor whose contents are undefined (recycled memory). */
    public Tensor take(DType dtype, long... shape) {
        if (closed) {
            throw new MarbleException("workspace is closed");
        }
        long n = 1;
        for (long s : shape) {
            n = Math.multiplyExact(n, s);
        }
        long bytes = Math.max(1, Math.multiplyExact(n, dtype.byteSize()));
        long size = Math.addExact(bytes, GRAIN - 1) / GRAIN * GRAIN;
        long offset = place(size);
        MemorySegment seg;
        Arena own = null;
        MemorySegment ownMemory = null;
        if (block != null && offset + size <= block.byteSize()) {
            seg = block.asSlice(offset, bytes);
        } else {
            own = Arena.ofShared();
            ownMemory = NativeMemory.allocateUninitialized(own, size, GRAIN);
            seg = ownMemory.asSlice(0, bytes);
            allocatedBytes += size;
            spilled = true;
        }
        live.put(seg.address(), new Piece(offset, size, bytes, own, ownMemory));
        liveBytes += bytes;
        peakLiveBytes = Math.max(peakLiveBytes, liveBytes);
        return Tensor.wrap(seg, dtype, shape);
    }

    /** A zero-filled tensor. */
    public Tensor zeros(DType dtype, long... shape) {
        Tensor t = take(dtype, shape);
        t.data().fill((byte) 0);
        return t;
    }

    /** Returns a tensor taken from this workspace (or a view starting where it starts); the caller must not use it afterwards. */
    public void give(Tensor t) {
        Piece p = live.remove(t.data().address());
        if (p == null) {
            throw new MarbleException("workspace: " + t + " was not taken from this workspace, or was given back already");
        }
        liveBytes -= p.bytes();
        if (p.own() != null) {
            p.own().close();
        }
        free(p.offset(), p.size());
        if (live.isEmpty() && spilled) {
            resizeBlock();
        }
    }

    /**
     * Keeps the start of a live tensor's buffer as a tensor of {@code shape} (no larger) and frees the
     * rest at once: its place in the range, and when the buffer has memory of its own, that memory's
     * pages. For a layer that writes a smaller result over its own input. t must not be used afterwards.
     */
    public Tensor shrink(Tensor t, DType dtype, long... shape) {
        long address = t.data().address();
        Piece p = live.get(address);
        if (p == null) {
            throw new MarbleException("workspace: " + t + " was not taken from this workspace, or was given back already");
        }
        long n = 1;
        for (long s : shape) {
            n = Math.multiplyExact(n, s);
        }
        long bytes = Math.max(1, Math.multiplyExact(n, dtype.byteSize()));
        if (bytes > p.bytes()) {
            throw new MarbleException("workspace: cannot shrink " + t + " to " + bytes + " bytes");
        }
        long size = (bytes + GRAIN - 1) / GRAIN * GRAIN;
        if (size < p.size()) {
            free(p.offset() + size, p.size() - size);
            if (p.ownMemory() != null) {
                NativeMemory.discard(p.ownMemory().asSlice(size));
            }
        }
        live.put(address, new Piece(p.offset(), size, bytes, p.own(), p.ownMemory()));
        liveBytes -= p.bytes() - bytes;
        return Tensor.wrap(t.data().asSlice(0, bytes), dtype, shape);
    }

    /** The lowest offset of the smallest gap that holds {@code size}, else the top. */
    private long place(long size) {
        Gap g = gapsBySize.ceiling(new Gap(0, size));
        if (g != null) {
            removeGap(g.offset(), g.size());
            if (g.size() > size) {
                addGap(g.offset() + size, g.size() - size);
            }
            return g.offset();
        }
        // Nothing fits: grow from the top, starting in the highest gap when it touches the top.
        Map.Entry<Long, Long> last = gapsByOffset.lastEntry();
        long offset = top;
        if (last != null && last.getKey() + last.getValue() == top) {
            offset = last.getKey();
            removeGap(last.getKey(), last.getValue());
        }
        top = offset + size;
        highWater = Math.max(highWater, top);
        return offset;
    }

    /** Makes [offset, offset + size) free, merged with free neighbours; a gap reaching the top lowers it. */
    private void free(long offset, long size) {
        long start = offset;
        long end = offset + size;
        Map.Entry<Long, Long> below = gapsByOffset.floorEntry(start);
        if (below != null && below.getKey() + below.getValue() == start) {
            removeGap(below.getKey(), below.getValue());
            start = below.getKey();
        }
        Long aboveSize = gapsByOffset.get(end);
        if (aboveSize != null) {
            removeGap(end, aboveSize);
            end += aboveSize;
        }
        if (end == top) {
            top = start;
        } else {
            addGap(start, end - start);
        }
    }

    private void addGap(long offset, long size) {
        gapsByOffset.put(offset, size);
        gapsBySize.add(new Gap(offset, size));
    }

    private void removeGap(long offset, long size) {
        gapsByOffset.remove(offset);
        gapsBySize.remove(new Gap(offset, size));
    }

    /** With nothing live: one block for the whole high-water mark, so the next identical call fits in it. */
    private void resizeBlock() {
        if (blockArena != null) {
            blockArena.close();
        }
        NativeMemory.releaseFreed(); // what the buffers of their own left in the C heap
        blockArena = Arena.ofShared();
        block = NativeMemory.allocateUninitialized(blockArena, highWater, GRAIN);
        allocatedBytes += highWater;
        spilled = false;
    }

    /** Total bytes ever allocated: blocks and buffers that did not fit one. */
    public long allocatedBytes() {
        return allocatedBytes;
    }

    /** Largest number of bytes handed out at once. */
    public long peakLiveBytes() {
        return peakLiveBytes;
    }

    /** Bytes of the range in use at its highest: what a block must span to hold every buffer so far. */
    public long highWaterBytes() {
        return highWater;
    }

    /** Frees everything; tensors taken from this workspace must not be used afterwards. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (Piece p : live.values()) {
            if (p.own() != null) {
                p.own().close();
            }
        }
        live.clear();
        if (blockArena != null) {
            blockArena.close();
        }
        NativeMemory.releaseFreed();
    }
}
