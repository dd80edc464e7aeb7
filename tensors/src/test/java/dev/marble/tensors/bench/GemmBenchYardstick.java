package dev.marble.tensors.bench;

import dev.marble.tensors.Parallel;
import dev.marble.tensors.Simd;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.openjdk.jmh.infra.Blackhole;

/**
 * The yardstick for {@link GemmBench}: twelve independent FMA chains held in vector registers, the
 * most any kernel can do on this machine as it is loaded right now. BenchMain reports each GEMM
 * result as a fraction of the yardstick with the same thread count.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Benchmark)
@Fork(1)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 3, time = 3)
public class GemmBenchYardstick {
    private static final VectorSpecies<Float> S = Simd.FLOAT;
    private static final int STEPS = 1 << 20;

    /** Threads; 0 = all cores. */
    @Param({"0", "1"})
    public int threads;

    private int threadsBefore;
    private int running;

    @Setup(Level.Trial)
    public void setUp() {
        threadsBefore = Parallel.threads();
        running = threads == 0 ? Runtime.getRuntime().availableProcessors() : threads;
        Parallel.setThreads(running);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        Parallel.setThreads(threadsBefore);
    }

    @Benchmark
    public void fma(FlopCounter counter, Blackhole bh) {
        float[] out = new float[running];
        Parallel.forChunks(running, (chunk, from, to) -> out[chunk] = chains(STEPS));
        bh.consume(out);
        counter.flop += (long) running * STEPS * 12 * 2 * S.length();
    }

    private static float chains(int steps) {
        FloatVector x = FloatVector.broadcast(S, 0.999999f);
        FloatVector y = FloatVector.broadcast(S, 1e-7f);
        FloatVector a0 = x, a1 = x, a2 = x, a3 = x, a4 = x, a5 = x, a6 = x, a7 = x, a8 = x, a9 = x, a10 = x, a11 = x;
        for (int i = 0; i < steps; i++) {
            a0 = a0.fma(x, y);
            a1 = a1.fma(x, y);
            a2 = a2.fma(x, y);
            a3 = a3.fma(x, y);
            a4 = a4.fma(x, y);
            a5 = a5.fma(x, y);
            a6 = a6.fma(x, y);
            a7 = a7.fma(x, y);
            a8 = a8.fma(x, y);
            a9 = a9.fma(x, y);
            a10 = a10.fma(x, y);
            a11 = a11.fma(x, y);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9).add(a10).add(a11).lane(0);
    }
}
