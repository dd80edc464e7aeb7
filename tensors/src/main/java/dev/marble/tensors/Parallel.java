package dev.marble.tensors;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.ForkJoinWorkerThread;
import java.util.concurrent.RecursiveAction;

/**
 * The one thread pool, sized to the cores. A kernel calls {@link #forChunks} once per operation: the
 * range [0, n) is cut into as many contiguous chunks as there are threads, the caller runs the
 * first chunk itself and the workers the rest. A call made from inside a chunk (a nested region)
 * runs serially, so kernels never oversubscribe.
 */
public final class Parallel {
    /** A body over one contiguous chunk [from, to) of the range; {@code chunk} is its index. */
    @FunctionalInterface
    public interface ChunkBody {
        void run(int chunk, int from, int to);
    }

    private static final int DEFAULT_THREADS = Integer.getInteger("marble.threads",
            Runtime.getRuntime().availableProcessors());
    private static volatile int threads = Math.max(1, DEFAULT_THREADS);
    private static volatile ForkJoinPool pool;
    private static final ThreadLocal<Boolean> INSIDE = ThreadLocal.withInitial(() -> Boolean.FALSE);

    private Parallel() {
    }

    /** Number of threads kernels split their work into. */
    public static int threads() {
        return threads;
    }

    /** Sets the thread count (the CLI's --threads); takes effect for the next kernel call. */
    public static synchronized void setThreads(int n) {
        if (n < 1) {
            throw new MarbleException("--threads must be at least 1, got " + n);
        }
        if (n != threads) {
            ForkJoinPool old = pool;
            pool = null;
            threads = n;
            if (old != null) {
                old.shutdown();
            }
        }
    }

    private static ForkJoinPool pool() {
        ForkJoinPool p = pool;
        if (p == null) {
            synchronized (Parallel.class) {
                p = pool;
                if (p == null) {
                    p = new ForkJoinPool(Math.max(1, threads - 1), fj -> {
                        ForkJoinWorkerThread t = ForkJoinPool.defaultForkJoinWorkerThreadFactory.newThread(fj);
                        t.setName("marble-worker-" + t.getPoolIndex());
                        t.setDaemon(true);
                        return t;
                    }, null, false);
                    pool = p;
                }
            }
        }
        return p;
    }

    /**
     * Runs {@code body} over [0, n) in up to {@link #threads()} contiguous chunks whose boundaries are
     * multiples of {@code grain} (except the last), and waits for all of them.
     */
    public static void forChunks(int n, int grain, ChunkBody body) {
        if (n <= 0) {
            return;
        }
        int g = Math.max(1, grain);
        int units = (n + g - 1) / g;
        int parts = Math.min(threads, units);
        if (parts <= 1 || INSIDE.get()) {
            body.run(0, 0, n);
            return;
        }
        ForkJoinPool p = pool();
        @SuppressWarnings("unchecked")
        ForkJoinTask<Void>[] tasks = new ForkJoinTask[parts - 1];
        for (int c = 1; c < parts; c++) {
            int from = chunkStart(c, parts, units, g, n);
            int to = chunkStart(c + 1, parts, units, g, n);
            final int chunk = c;
            tasks[c - 1] = p.submit(new RecursiveAction() {
                @Override
                protected void compute() {
                    INSIDE.set(Boolean.TRUE);
                    try {
                        body.run(chunk, from, to);
                    } finally {
                        INSIDE.set(Boolean.FALSE);
                    }
                }
            });
        }
        INSIDE.set(Boolean.TRUE);
        Throwable failure = null;
        try {
            body.run(0, 0, chunkStart(1, parts, units, g, n));
        } catch (Throwable t) {
            failure = t;
        } finally {
            INSIDE.set(Boolean.FALSE);
        }
        for (ForkJoinTask<Void> t : tasks) {
            try {
                t.join();
            } catch (Throwable e) {
                if (failure == null) {
                    failure = e;
                }
            }
        }
        if (failure instanceof RuntimeException re) {
            throw re;
        }
        if (failure instanceof Error er) {
            throw er;
        }
    }

    /** Same as {@link #forChunks(int, int, ChunkBody)} with grain 1. */
    public static void forChunks(int n, ChunkBody body) {
        forChunks(n, 1, body);
    }

    private static int chunkStart(int c, int parts, int units, int grain, int n) {
        long u = (long) units * c / parts;
        return (int) Math.min(n, u * grain);
    }
}
