package dev.marble.tensors.bench;

import dev.marble.tensors.DType;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.kernels.Attention;
import java.lang.foreign.Arena;
import java.util.Random;
import java.util.concurrent.TimeUnit;
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

/**
 * SD-1.5 attention at a 64×64 latent: self-attention over 4,096 tokens and cross-attention to 77
 * text tokens, 8 heads × 40, batch 2 (guidance). "flop" counts 4·Lq·Lk·D·H·B per call (Q·Kᵀ and
 * P·V; the softmax is not counted). {@code threads} = 1 measures one core.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 2, time = 3)
@Measurement(iterations = 3, time = 4)
public class AttentionBench {
    @Param({"0", "1"})
    public int threads;

    private static final int B = 2;
    private static final int L = 4096;
    private static final int TEXT = 77;
    private static final int HEADS = 8;
    private static final int D = 40;

    private Arena arena;
    private Tensor q;
    private Tensor k;
    private Tensor v;
    private Tensor kText;
    private Tensor vText;
    private Tensor out;
    private int before;

    @Setup(Level.Trial)
    public void setUp() {
        before = Parallel.threads();
        if (threads > 0) {
            Parallel.setThreads(threads);
        }
        arena = Arena.ofShared();
        Random rnd = new Random(1);
        q = random(rnd, B, L, HEADS * D);
        k = random(rnd, B, L, HEADS * D);
        v = random(rnd, B, L, HEADS * D);
        kText = random(rnd, B, TEXT, HEADS * D);
        vText = random(rnd, B, TEXT, HEADS * D);
        out = Tensor.allocate(arena, DType.F32, B, L, HEADS * D);
    }

    private Tensor random(Random rnd, int... shape) {
        float[] a = new float[shape[0] * shape[1] * shape[2]];
        for (int i = 0; i < a.length; i++) {
            a[i] = rnd.nextFloat() * 2 - 1;
        }
        return Tensor.fromFloats(arena, a, shape[0], shape[1], shape[2]);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        Parallel.setThreads(before);
        arena.close();
    }

    @Benchmark
    public Tensor selfAttention(FlopCounter flops) {
        Attention.forward(q, k, v, HEADS, (float) (1 / Math.sqrt(D)), false, out);
        flops.flop += 4L * L * L * D * HEADS * B;
        return out;
    }

    @Benchmark
    public Tensor crossAttention(FlopCounter flops) {
        Attention.forward(q, kText, vText, HEADS, (float) (1 / Math.sqrt(D)), false, out);
        flops.flop += 4L * L * TEXT * D * HEADS * B;
        return out;
    }
}
