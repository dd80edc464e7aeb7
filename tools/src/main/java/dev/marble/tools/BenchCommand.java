package dev.marble.tools;

import dev.marble.runtime.Component;
import dev.marble.runtime.Marble;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Simd;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.kernels.Flops;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.function.Consumer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code marble bench}: times each stage of a model alone and reports seconds, GFLOP/s (counted by
 * the kernels), the fraction of this machine's peak, and the process's peak resident memory.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, sortOptions = false,
        description = "Time the text encoder, the UNet and the VAE decoder of a model, and the time to load it.")
final class BenchCommand implements Runnable {
    @Mixin
    ModelOptions model;

    @Mixin
    QuantOption quant;

    @Option(names = "--stage", defaultValue = "all", description = "load, text-encoder, unet, vae-decode or all (default: ${DEFAULT-VALUE}).")
    String stage;

    @Option(names = "--size", defaultValue = "512", description = "Image size in pixels; latents are size / 8 (default: ${DEFAULT-VALUE}).")
    int size;

    @Option(names = "--batch", defaultValue = "2", description = "UNet batch (2 = one guided step) (default: ${DEFAULT-VALUE}).")
    int batch;

    @Option(names = "--repeat", defaultValue = "2", description = "Timed runs per stage after one warm-up (default: ${DEFAULT-VALUE}).")
    int repeat;

    @Option(names = "--peak-gflops", defaultValue = "230", description = "This machine's peak for the fraction column (default: ${DEFAULT-VALUE}).")
    double peak;

    @Mixin
    Options options;

    @Override
    public void run() {
        options.apply();
        if (repeat < 1 || batch < 1 || size < 8) {
            throw new MarbleException("bench: --repeat and --batch must be >= 1 and --size >= 8");
        }
        List<String> stages = stage.equals("all") ? List.of("load", "text-encoder", "unet", "vae-decode") : List.of(stage);
        System.out.println(Simd.describe());
        System.out.printf(Locale.ROOT, "%-14s %-14s %10s %10s %10s %8s %12s %12s %12s%n", "stage", "shape", "seconds",
                "GFLOP", "GFLOP/s", "of peak", "peak RSS MB", "scratch MB", "live MB");
        resetPeakRss();
        long t0 = System.nanoTime();
        try (Marble m = model.load(EnumSet.allOf(Component.class), options, quant.format())) {
            double load = (System.nanoTime() - t0) / 1e9;
            if (stages.contains("load")) {
                row("load", "-", load, 0, null);
            }
            for (String s : stages) {
                switch (s) {
                    case "load" -> { }
                    case "text-encoder" -> textEncoder(m);
                    case "unet" -> unet(m);
                    case "vae-decode" -> vaeDecode(m);
                    default -> throw new MarbleException("bench: unknown stage '" + s + "'");
                }
            }
        }
    }

    private void textEncoder(Marble m) {
        int[][] ids = {m.tokenizer().encode(""), m.tokenizer().encode("a photograph of an astronaut riding a horse")};
        time("text-encoder", "2x77", ws -> m.textEncoder().encode(ws, ids).give(ws));
    }

    private void unet(Marble m) {
        int h = size / 8;
        int c = m.unet().config().inChannels();
        try (Arena arena = Arena.ofShared()) {
            Tensor sample = random(arena, batch, c, h, h);
            Tensor ctx = random(arena, batch, 77, m.unet().config().crossAttentionDim().get(0));
            time("unet", batch + "x" + c + "x" + h + "x" + h, ws -> ws.give(m.unet().forward(ws, sample, new float[] {500f}, ctx)));
        }
    }

    private void vaeDecode(Marble m) {
        int h = size / m.vae().config().downscaleFactor();
        try (Arena arena = Arena.ofShared()) {
            Tensor z = random(arena, 1, m.vae().config().latentChannels(), h, h);
            time("vae-decode", size + "x" + size, ws -> ws.give(m.vae().decode(ws, z)));
        }
    }

    private void time(String name, String shape, Consumer<Workspace> body) {
        resetPeakRss();
        try (Workspace ws = new Workspace()) {
            body.accept(ws);
            for (int i = 0; i < repeat; i++) {
                Flops.reset();
                long t0 = System.nanoTime();
                body.accept(ws);
                row(name, shape, (System.nanoTime() - t0) / 1e9, Flops.count(), ws);
            }
        }
    }

    /**
     * ws: the stage's scratch, whose size (the high-water mark of its buffers: what a repeated call
     * keeps) and largest number of live bytes are shown; null for none.
     */
    private void row(String name, String shape, double seconds, long flops, Workspace ws) {
        double gf = flops / 1e9;
        System.out.printf(Locale.ROOT, "%-14s %-14s %10.3f %10.1f %10.1f %7.0f%% %12.0f %12.0f %12.0f%n", name, shape,
                seconds, gf, gf / seconds, 100 * gf / seconds / peak, peakRssMb(),
                ws == null ? 0 : ws.highWaterBytes() / MB, ws == null ? 0 : ws.peakLiveBytes() / MB);
    }

    private static final double MB = 1 << 20;

    private static Tensor random(Arena arena, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        Random r = new Random(0);
        float[] v = new float[Math.toIntExact(n)];
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) r.nextGaussian();
        }
        return Tensor.fromFloats(arena, v, shape);
    }

    /** VmHWM of this process from /proc (Linux); -1 elsewhere. */
    static double peakRssMb() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
                }
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }

    /** Linux resets the peak-RSS mark when "5" is written to clear_refs; so each stage reports its own peak. */
    static void resetPeakRss() {
        try {
            Files.writeString(Path.of("/proc/self/clear_refs"), "5");
        } catch (IOException | SecurityException e) {
            // Not Linux, or not permitted: peaks then accumulate across stages, which the column still bounds.
        }
    }
}
