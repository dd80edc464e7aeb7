package dev.marble.tensors.bench;

import dev.marble.tensors.DType;
import dev.marble.tensors.Parallel;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.kernels.Conv2d;
import dev.marble.tensors.kernels.ConvWeights;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.tensors.quant.QuantizedTensor;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * 3×3 stride-1 pad-1 convolutions at the SD 1.5 UNet levels (batch 2, IC = OC) and a VAE decoder
 * shape (batch 1, 128 channels at 256×256). {@code shape} is batch_channels_size; {@code weights} a
 * dtype (F16, F32) or a quantization (q8_0, q4_0, q4_k); {@code threads} 0 means all cores. FLOPs per
 * call: 2·B·OH·OW·OC·IC·KH·KW, the direct convolution's, also for the Winograd path (which does ~¼
 * of the multiply-adds), so the two compare as times. {@link #conv3x3} runs what {@link Conv2d}
 * dispatches to (Winograd for these shapes), {@link #conv3x3Direct} the direct path in a JVM forked
 * with {@code -Dmarble.conv.winograd=false}: one run shows both side by side, e.g.
 * {@code -Dbench.args="ConvBench -p weights=F16,q8_0 -p threads=0 -f 1 -wi 2 -i 3"}.
 *
 * <p>Measured so (-w 2s -r 3s, one shape per run, quiet machine whose FMA yardstick gave 100 GFLOP/s
 * that day), GFLOP/s Winograd / direct: 2_320_64 F16 236 / 73, q8_0 223 / 77; 2_640_32 242 / 76,
 * 247 / 75; 2_1280_16 224 / 75, 207 / 73; 1_128_256 213 / 72, 216 / 71.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Benchmark)
public class ConvBench {
    @Param({"2_320_64", "2_640_32", "2_1280_16", "1_128_256"})
    public String shape;

    @Param({"F16", "F32", "q8_0", "q4_0", "q4_k"})
    public String weights;

    @Param({"0", "1"})
    public int threads;

    private Arena arena;
    private Tensor x;
    private Tensor out;
    private ConvWeights w;
    private long flops;

    @Setup(Level.Trial)
    public void setUp() {
        String[] p = shape.split("_");
        int b = Integer.parseInt(p[0]);
        int c = Integer.parseInt(p[1]);
        int s = Integer.parseInt(p[2]);
        Parallel.setThreads(threads == 0 ? Runtime.getRuntime().availableProcessors() : threads);
        arena = Arena.ofShared();
        Random rnd = new Random(42);
        x = Tensor.allocate(arena, DType.F32, b, s, s, c);
        out = Tensor.allocate(arena, DType.F32, b, s, s, c);
        for (long i = 0; i < x.numel(); i++) {
            x.data().setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, rnd.nextFloat() - 0.5f);
        }
        Tensor weight = Tensor.allocate(arena, DType.F32, c, c, 3, 3);
        for (long i = 0; i < weight.numel(); i++) {
            weight.data().setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, (rnd.nextFloat() - 0.5f) * 0.05f);
        }
        Tensor bias = Tensor.fromFloats(arena, new float[c], c);
        flops = 2L * b * s * s * c * c * 9;
        if (weights.startsWith("q")) {
            w = ConvWeights.packQuantized(QuantizedTensor.quantize("w", weight, QuantFormat.parse(weights), arena), bias,
                    arena);
            return;
        }
        DType dt = DType.parse(weights);
        if (dt != DType.F32) {
            Tensor narrow = Tensor.allocate(arena, dt, c, c, 3, 3);
            float[] v = weight.toFloatArray();
            for (int i = 0; i < v.length; i++) {
                narrow.setFloat(v[i], i / (c * 9), i / 9 % c, i / 3 % 3, i % 3);
            }
            weight = narrow;
        }
        w = ConvWeights.pack(weight, bias, arena);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
        Parallel.setThreads(Runtime.getRuntime().availableProcessors());
    }

    @Benchmark
    public void conv3x3(FlopCounter counter) {
        Conv2d.forward(x, w, 1, 1, out);
        counter.flop += flops;
    }

    @Benchmark
    @Fork(jvmArgsAppend = "-Dmarble.conv.winograd=false")
    public void conv3x3Direct(FlopCounter counter) {
        Conv2d.forward(x, w, 1, 1, out);
        counter.flop += flops;
    }
}
