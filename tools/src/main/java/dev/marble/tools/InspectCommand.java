package dev.marble.tools;

import dev.marble.tensors.MarbleException;
import dev.marble.weights.SafetensorsFile;
import dev.marble.weights.TensorInfo;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Parameters;

/** {@code marble inspect FILE|DIR}: tensors (name, dtype, shape, bytes) and metadata. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "List the tensors and metadata of a .safetensors file, or of every one under a folder.")
final class InspectCommand implements Runnable {
    @Parameters(paramLabel = "FILE|DIR", description = "A .safetensors file or a model folder.")
    Path target;

    @Mixin
    Options options;

    @Override
    public void run() {
        options.apply();
        PrintStream out = System.out;
        if (Files.isDirectory(target)) {
            List<Path> files;
            try (Stream<Path> s = Files.walk(target)) {
                files = s.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList();
            } catch (IOException e) {
                throw new MarbleException(target + ": cannot list folder: " + e.getMessage());
            }
            if (files.isEmpty()) {
                throw new MarbleException(target + ": no .safetensors files in this folder");
            }
            for (Path f : files) {
                out.println("== " + target.relativize(f));
                print(f, out);
                out.println();
            }
        } else if (Files.exists(target)) {
            print(target, out);
        } else {
            throw new MarbleException(target + ": no such file or folder");
        }
    }

    private static void print(Path file, PrintStream out) {
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            long total = 0;
            int nameWidth = 4;
            for (String n : f.names()) {
                nameWidth = Math.max(nameWidth, n.length());
            }
            String fmt = "%-" + nameWidth + "s  %-7s  %-22s  %12s%n";
            out.printf(fmt, "name", "dtype", "shape", "bytes");
            for (Map.Entry<String, TensorInfo> e : f.infos().entrySet()) {
                TensorInfo t = e.getValue();
                out.printf(fmt, t.name(), t.dtype().safetensorsName(), Arrays.toString(t.shape()), t.byteSize());
                total += t.byteSize();
            }
            out.printf("%d tensors, %d bytes%n", f.names().size(), total);
            if (!f.metadata().isEmpty()) {
                out.println("metadata:");
                f.metadata().forEach((k, v) -> out.println("  " + k + ": " + v));
            }
        }
    }
}
