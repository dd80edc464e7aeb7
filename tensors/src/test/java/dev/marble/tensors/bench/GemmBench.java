package dev.marble.tensors.bench;

import dev.marble.tensors.DType;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.kernels.Convert;
import dev.marble.tensors.kernels.Gemm;
import dev.marble.tensors.kernels.PackedMatrix;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
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
 * C [M, N] = A [M, K] · B [K, N] through {@link Gemm#matmul} at UNet sizes (4096 latent positions ×
 * 320 / 1280 channels) and a square one, with F32, F16 and block-quantized (q8_0, q4_0, q4_k)
 * weights, on all cores and on one.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Benchmark)
@Fork(1)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 3, time = 3)
public class GemmBench {
    /** M x N x K. */
    @Param({"4096x320x320", "4096x1280x320", "1024x1024x1024"})
    public String shape;

    /** A dtype (F32, F16) or a quantization (q8_0, q4_0, q4_k). */
    @Param({"F32", "F16", "q8_0", "q4_0", "q4_k"})
    public String weights;

    /** Kernel threads; 0 = all cores. */
    @Param({"0", "1"})
    public int threads;

    private Arena arena;
    private Tensor a;
    private Tensor c;
    private PackedMatrix b;
    private long flop;
    private int threadsBefore;

    @Setup(Level.Trial)
    public void setUp() {
        String[] mnk = shape.split("x");
        int m = Integer.parseInt(mnk[0]);
        int n = Integer.parseInt(mnk[1]);
        int k = Integer.parseInt(mnk[2]);
        flop = 2L * m * n * k;
        arena = Arena.ofShared();
        SplittableRandom rnd = new SplittableRandom(1);
        a = random(rnd, m, k);
        Tensor w32 = random(rnd, n, k); // PyTorch Linear weight [N, K]
        if (weights.startsWith("q")) {
            b = PackedMatrix.ofQuantized(QuantizedTensor.quantize("w", w32, QuantFormat.parse(weights), arena), arena);
        } else {
            Tensor w = w32;
            if (DType.parse(weights) == DType.F16) {
                w = Tensor.allocate(arena, DType.F16, n, k);
                Convert.f32ToF16(w32.data(), 0, w.data(), 0, n * k);
            }
            b = PackedMatrix.ofLinear(w, arena);
        }
        c = Tensor.allocate(arena, DType.F32, m, n);
        threadsBefore = Parallel.threads();
        Parallel.setThreads(threads == 0 ? Runtime.getRuntime().availableProcessors() : threads);
    }

    private Tensor random(SplittableRandom rnd, int rows, int cols) {
        Tensor t = Tensor.allocate(arena, DType.F32, rows, cols);
        for (long i = 0; i < (long) rows * cols; i++) {
            t.data().setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (float) rnd.nextDouble(-1, 1));
        }
        return t;
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        Parallel.setThreads(threadsBefore);
        arena.close();
    }

    @Benchmark
    public void matmul(FlopCounter counter) {
        Gemm.matmul(a, b, null, c);
        counter.flop += flop;
    }
}
