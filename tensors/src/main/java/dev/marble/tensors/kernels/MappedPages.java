package dev.marble.tensors.kernels;

import dev.marble.tensors.Tensor;

/**
 * Drops a memory-mapped weight's pages from this process's resident set once its packed copy exists
 * (madvise DONTNEED through {@code MemorySegment.unload}). The file's bytes stay in the page cache and
 * can be read again; without this, loading keeps every touched page of the file resident until the
 * mapping closes, doubling the peak memory of a load.
 */
final class MappedPages {
    private MappedPages() {
    }

    static void release(Tensor weight) {
        if (weight.data().isMapped()) {
            weight.data().unload();
        }
    }
}
