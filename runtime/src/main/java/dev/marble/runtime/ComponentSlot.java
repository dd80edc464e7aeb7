package dev.marble.runtime;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.NativeMemory;
import java.lang.foreign.Arena;

/**
 * One weighted part of a model (text encoder, UNet, VAE decoder or encoder), either resident (loaded
 * with the model, freed when it closes) or staged: loaded into an arena of its own when a stage
 * {@linkplain #acquire() acquires} it and freed when the last user releases it. Concurrent
 * generations share one staged copy; the count of users decides when it goes.
 */
final class ComponentSlot<T> {
    /** Loads the component's weights into {@code arena}. */
    interface Loader<T> {
        T load(Arena arena);
    }

    private final String name;
    private final T resident;
    private final Loader<T> loader;
    private int users;
    private Arena arena;
    private T loaded;

    private ComponentSlot(String name, T resident, Loader<T> loader) {
        this.name = name;
        this.resident = resident;
        this.loader = loader;
    }

    static <T> ComponentSlot<T> resident(String name, T component) {
        return new ComponentSlot<>(name, component, null);
    }

    static <T> ComponentSlot<T> staged(String name, Loader<T> loader) {
        return new ComponentSlot<>(name, null, loader);
    }

    boolean isStaged() {
        return loader != null;
    }

    /** The resident component; a staged one exists only inside a stage. */
    T resident() {
        if (resident == null) {
            throw new MarbleException("the " + name + " is loaded in stages (LoadOptions.staged): it is in memory"
                    + " only while a generation uses it");
        }
        return resident;
    }

    /** Whether a staged component is in memory now (for tests). */
    synchronized boolean isLoaded() {
        return loaded != null;
    }

    /** The component for one stage, loading it first if it is staged and nobody holds it. */
    Lease acquire() {
        if (resident != null) {
            return new Lease(resident, false);
        }
        synchronized (this) {
            if (users == 0) {
                Arena a = Arena.ofShared();
                try {
                    loaded = loader.load(a);
                } catch (RuntimeException | Error e) {
                    a.close();
                    NativeMemory.releaseFreed();
                    throw e;
                }
                arena = a;
            }
            users++;
            return new Lease(loaded, true);
        }
    }

    private synchronized void release() {
        if (--users == 0) {
            loaded = null;
            arena.close();
            arena = null;
            NativeMemory.releaseFreed();
        }
    }

    /** A staged component is freed when its last lease closes; a resident one's lease does nothing. */
    final class Lease implements AutoCloseable {
        private final T component;
        private boolean open;

        private Lease(T component, boolean open) {
            this.component = component;
            this.open = open;
        }

        T get() {
            return component;
        }

        @Override
        public void close() {
            if (open) {
                open = false;
                release();
            }
        }
    }
}
