package dev.marble.tools;

import dev.marble.runtime.synth.Synthesizer;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import java.nio.file.Path;
import java.util.Locale;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code marble synth}: a full-size model with random weights and the real configs. */
@Command(name = "synth", mixinStandardHelpOptions = true,
        description = "Write a full-size Stable Diffusion model with random weights (real configs and shapes), for benchmarks and deployment tests.")
final class SynthCommand implements Runnable {
    @Option(names = "--like", required = true, description = "sd15, sd21, or a diffusers folder whose configs to copy.")
    String like;

    @Option(names = "--dtype", defaultValue = "f16", description = "f16, bf16 or f32 (default: ${DEFAULT-VALUE}).")
    String dtype;

    @Option(names = "--out", required = true, paramLabel = "PATH", description = "Output diffusers folder (or .safetensors file with --single-file).")
    Path out;

    @Option(names = "--single-file", description = "Write one LDM-style .safetensors checkpoint (tokenizer/ beside it) instead of a folder.")
    boolean singleFile;

    @Mixin
    Options options;

    @Override
    public void run() {
        options.apply();
        DType dt = switch (dtype.toLowerCase(Locale.ROOT)) {
            case "f16", "fp16", "float16" -> DType.F16;
            case "bf16", "bfloat16" -> DType.BF16;
            case "f32", "fp32", "float32" -> DType.F32;
            default -> throw new MarbleException("--dtype: expected f16, bf16 or f32, got '" + dtype + "'");
        };
        long t0 = System.nanoTime();
        if (singleFile) {
            if (!out.getFileName().toString().endsWith(".safetensors")) {
                throw new MarbleException("--out: a single-file checkpoint must end in .safetensors, got " + out);
            }
            Synthesizer.writeSingleFile(like, dt, out, part -> System.err.println("marble: synthesizing " + part + "..."));
        } else {
            Synthesizer.writeFolder(like, dt, out, part -> System.err.println("marble: synthesizing " + part + "..."));
        }
        System.err.printf(Locale.ROOT, "marble: wrote %s (%s, %s) in %.1f s%n", out, like, dt,
                (System.nanoTime() - t0) / 1e9);
    }
}
