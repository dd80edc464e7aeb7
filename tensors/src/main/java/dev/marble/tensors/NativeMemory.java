package dev.marble.tensors;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The C heap under Marble's arenas, seen from Java through the C library's own functions.
 *
 * <ul>
 *   <li>{@link #releaseFreed()}: an arena's segments come from the C heap, and glibc returns a freed
 *       block to the system only when it was mapped on its own (large blocks) or sits at the top of the
 *       heap. After a model component of many mid-sized weights is closed, most of its pages would stay
 *       resident; {@code malloc_trim(0)} releases every free page.</li>
 *   <li>{@link #allocateUninitialized}: {@code Arena.allocate} zeroes what it returns, which touches
 *       every page at once. Scratch buffers are written before they are read, so they come from
 *       {@code aligned_alloc} instead: a large block then costs resident memory only as far as it is
 *       used, and no time for zeroing.</li>
 *   <li>{@link #discard}: a buffer whose tail is no longer needed gives those pages back at once.</li>
 * </ul>
 * Without the C functions (another C library, or native access denied) both fall back to what the
 * JDK does on its own.
 */
public final class NativeMemory {
    private static final MethodHandle MALLOC_TRIM = find("malloc_trim",
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
    private static final MethodHandle ALIGNED_ALLOC = find("aligned_alloc",
            FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG));
    private static final MethodHandle FREE = find("free", FunctionDescriptor.ofVoid(ValueLayout.ADDRESS));
    /** madvise(addr, len, MADV_DONTNEED) drops pages at once on Linux; elsewhere the advice differs. */
    private static final MethodHandle MADVISE = System.getProperty("os.name", "").startsWith("Linux")
            ? find("madvise", FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG,
                    ValueLayout.JAVA_INT)) : null;
    private static final int MADV_DONTNEED = 4;
    private static final long PAGE = 4096;

    private NativeMemory() {
    }

    private static MethodHandle find(String name, FunctionDescriptor descriptor) {
        try {
            Linker linker = Linker.nativeLinker();
            return linker.defaultLookup().find(name).map(f -> linker.downcallHandle(f, descriptor)).orElse(null);
        } catch (RuntimeException e) {
            // No native linker on this platform, or native access denied.
            return null;
        }
    }

    /**
     * {@code bytes} of uninitialized memory aligned to {@code alignment} (a power of two), freed when
     * {@code arena} closes. Falls back to {@code arena.allocate} (zeroed).
     */
    public static MemorySegment allocateUninitialized(Arena arena, long bytes, long alignment) {
        if (ALIGNED_ALLOC == null || FREE == null) {
            return arena.allocate(bytes, alignment);
        }
        long size = (Math.max(1, bytes) + alignment - 1) / alignment * alignment; // aligned_alloc wants a multiple
        MemorySegment p;
        try {
            p = (MemorySegment) ALIGNED_ALLOC.invokeExact(alignment, size);
        } catch (Throwable t) {
            throw new IllegalStateException("aligned_alloc failed", t);
        }
        if (p.equals(MemorySegment.NULL)) {
            throw new MarbleException("out of memory: cannot allocate " + size + " bytes of scratch memory");
        }
        try {
            return p.reinterpret(bytes, arena, NativeMemory::free);
        } catch (RuntimeException | Error e) {
            free(p);
            throw e;
        }
    }

    private static void free(MemorySegment p) {
        try {
            FREE.invokeExact(p);
        } catch (Throwable t) {
            throw new IllegalStateException("free failed", t);
        }
    }

    /**
     * Gives the whole pages inside {@code seg} back to the system while the allocation stays valid: they
     * read as zeros if touched again. For the unused tail of a scratch buffer; does nothing where
     * madvise is not at hand.
     */
    public static void discard(MemorySegment seg) {
        if (MADVISE == null) {
            return;
        }
        long start = (seg.address() + PAGE - 1) / PAGE * PAGE;
        long end = (seg.address() + seg.byteSize()) / PAGE * PAGE;
        if (end <= start) {
            return;
        }
        try {
            int ignored = (int) MADVISE.invokeExact(MemorySegment.ofAddress(start), end - start, MADV_DONTNEED);
        } catch (Throwable t) {
            throw new IllegalStateException("madvise failed", t);
        }
    }

    /** Returns free C-heap pages to the system; call after closing a large arena. */
    public static void releaseFreed() {
        if (MALLOC_TRIM == null) {
            return;
        }
        try {
            int ignored = (int) MALLOC_TRIM.invokeExact(0L);
        } catch (Throwable t) {
            throw new IllegalStateException("malloc_trim failed", t);
        }
    }
}
