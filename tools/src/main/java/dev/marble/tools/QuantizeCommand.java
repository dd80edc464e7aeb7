package dev.marble.tools;

import dev.marble.runtime.Component;
import dev.marble.runtime.LoadOptions;
import dev.marble.runtime.ModelFiles;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.weights.SafetensorsFile;
import dev.marble.weights.TensorSource;
import dev.marble.weights.ldm.LdmCheckpoint;
import dev.marble.weights.quant.ModelQuantizer;
import dev.marble.weights.quant.QuantRules;
import dev.marble.weights.quant.QuantizedSource;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code marble quantize}: a diffusers folder to a quantized diffusers folder (configs, scheduler and
 * tokenizer copied; one quantized weights file per component), or a single-file checkpoint to a
 * quantized single file under the same tensor names. Tensor by tensor: the input stays mapped, and
 * only the output's own bytes are held (off-heap) until each file is written atomically.
 */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = {"Quantize a model's UNet and text encoder weights (the VAE and small or sensitive tensors stay F16).",
            "Types: q8_0 (8.5 bits/weight), q4_0 (4.5), q4_k (4.625-4.7, more accurate than q4_0)."})
final class QuantizeCommand implements Runnable {
    /** Single-file key prefixes and the component each belongs to; the rules see names without them. */
    /** Files of a diffusers folder that are not weights and are copied as they are. */
    private static final List<String> CONFIG_FOLDERS = List.of("scheduler", "tokenizer", "unet", "vae", "text_encoder");

    @Option(names = {"-m", "--model"}, required = true, paramLabel = "IN",
            description = "A diffusers folder or a single-file .safetensors checkpoint.")
    Path model;

    @Option(names = "--type", required = true, paramLabel = "TYPE", description = "q8_0, q4_0 or q4_k.")
    String type;

    @Option(names = "--out", required = true, paramLabel = "OUT",
            description = "Output folder, or a .safetensors file when IN is a single file.")
    Path out;

    @Option(names = "--variant", paramLabel = "NAME", description = "Read this weights variant of a diffusers folder, e.g. fp16.")
    String variant;

    @Option(names = "--rule", paramLabel = "[COMPONENT:]REGEX=TYPE",
            description = "Override the defaults for matching tensors (first match wins; TYPE q8_0, q4_0, q4_k, f16 or keep).")
    List<String> rules = new ArrayList<>();

    @Mixin
    Options options;

    private ProgressBar bar;
    private int done;
    private int total;
    private long lastDraw;

    @Override
    public void run() {
        options.apply();
        QuantRules r = QuantRules.defaults(QuantFormat.parse(type)).withOverrides(rules);
        if (!Files.exists(model)) {
            throw new MarbleException(model + ": no such model file or folder");
        }
        if (out.toAbsolutePath().normalize().equals(model.toAbsolutePath().normalize())) {
            throw new MarbleException("--out: " + out + " is the input model; write to a new path");
        }
        long t0 = System.nanoTime();
        bar = new ProgressBar(System.err, "quantizing");
        try {
            if (Files.isDirectory(model)) {
                if (out.getFileName().toString().endsWith(".safetensors")) {
                    throw new MarbleException("--out: a diffusers folder quantizes to a folder, not to " + out);
                }
                folder(r);
            } else {
                if (!out.getFileName().toString().endsWith(".safetensors")) {
                    throw new MarbleException("--out: a single-file checkpoint quantizes to a .safetensors file, got " + out);
                }
                singleFile(r);
            }
        } finally {
            bar.finish();
        }
        System.err.printf(Locale.ROOT, "marble: wrote %s (%s) in %.1f s%n", out, type.toLowerCase(Locale.ROOT),
                (System.nanoTime() - t0) / 1e9);
    }

    private void folder(QuantRules r) {
        LoadOptions lo = LoadOptions.defaults().withVariant(variant);
        try (ModelFiles files = ModelFiles.open(model, lo)) {
            List<Component> parts = List.of(Component.TEXT_ENCODER, Component.UNET, Component.VAE);
            for (Component c : parts) {
                TensorSource s = files.weights(c);
                if (s instanceof QuantizedSource) {
                    throw new MarbleException(model + ": " + c.folder() + " is already quantized");
                }
                total += s.keys().size();
            }
            copyConfigs();
            for (Component c : parts) {
                String file = c == Component.TEXT_ENCODER ? "model.safetensors" : "diffusion_pytorch_model.safetensors";
                TensorSource s = files.weights(c);
                try (Arena arena = Arena.ofShared()) {
                    ModelQuantizer mq = new ModelQuantizer(r, arena);
                    for (String key : s.keys()) {
                        add(mq, c.folder(), key, key, s.get(key));
                    }
                    mq.write(out.resolve(c.folder()).resolve(file));
                    summary(c.folder(), mq.stats());
                }
            }
        }
    }

    /** model_index.json and the non-weight files of the component folders. */
    private void copyConfigs() {
        try {
            Files.createDirectories(out);
            Files.copy(model.resolve("model_index.json"), out.resolve("model_index.json"), StandardCopyOption.REPLACE_EXISTING);
            for (String sub : CONFIG_FOLDERS) {
                Path from = model.resolve(sub);
                if (!Files.isDirectory(from)) {
                    continue;
                }
                Files.createDirectories(out.resolve(sub));
                try (Stream<Path> s = Files.list(from)) {
                    for (Path f : s.filter(Files::isRegularFile).filter(QuantizeCommand::isConfig).toList()) {
                        Files.copy(f, out.resolve(sub).resolve(f.getFileName()), StandardCopyOption.REPLACE_EXISTING);
                    }
                }
            }
        } catch (IOException e) {
            throw new MarbleException(out + ": cannot copy the model's configs: " + e.getMessage());
        }
    }

    /** Everything but weights: configs, tokenizer vocabularies, merges. */
    private static boolean isConfig(Path f) {
        String n = f.getFileName().toString();
        return !(n.endsWith(".safetensors") || n.contains(".safetensors.index") || n.endsWith(".bin") || n.endsWith(".ckpt")
                || n.endsWith(".pt") || n.endsWith(".msgpack") || n.endsWith(".onnx"));
    }

    private void singleFile(QuantRules r) {
        try (SafetensorsFile f = SafetensorsFile.open(model); Arena arena = Arena.ofShared()) {
            if (QuantizedSource.isQuantized(f.metadata())) {
                throw new MarbleException(model + ": already quantized");
            }
            ModelQuantizer mq = new ModelQuantizer(r, arena);
            f.metadata().forEach(mq::putMetadata);
            total = f.names().size();
            for (String name : f.names()) {
                LdmCheckpoint.Key k = LdmCheckpoint.Key.of(name);
                add(mq, k.component(), k.name(), name, f.tensor(name));
            }
            mq.write(out);
            summary(model.getFileName().toString(), mq.stats());
        }
        copyYaml();
    }

    /** The original-config YAML beside the input, renamed after the output, where Marble looks for it. */
    private void copyYaml() {
        String in = model.getFileName().toString();
        Path yaml = model.resolveSibling(in.substring(0, in.length() - ".safetensors".length()) + ".yaml");
        if (Files.isRegularFile(yaml)) {
            String o = out.getFileName().toString();
            Path target = out.toAbsolutePath().resolveSibling(o.substring(0, o.length() - ".safetensors".length()) + ".yaml");
            try {
                Files.copy(yaml, target, StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException e) {
                throw new MarbleException(target + ": cannot copy the original config: " + e.getMessage());
            }
        }
    }

    private void add(ModelQuantizer mq, String component, String ruleName, String name, Tensor t) {
        QuantRules.Decision d = mq.add(component, ruleName, name, t);
        if (options.verbose()) {
            bar.finish();
            System.err.println("marble: " + component + " " + name + " -> " + d.target()
                    + (d.reason().isEmpty() ? "" : " (" + d.reason() + ")"));
        }
        done++;
        // a model has about a thousand tensors, most of them tiny: redraw at most ten times a second
        long now = System.nanoTime();
        if (now - lastDraw > 100_000_000L || done == total) {
            bar.update(done, total);
            lastDraw = now;
        }
    }

    private void summary(String what, ModelQuantizer.Stats s) {
        bar.finish();
        System.err.printf(Locale.ROOT, "marble: %s: %d quantized, %d f16, %d kept; %.1f MB -> %.1f MB%n", what,
                s.quantized(), s.half(), s.kept(), s.bytesIn() / 1e6, s.bytesOut() / 1e6);
    }
}
