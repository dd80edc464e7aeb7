package dev.marble.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.tensors.MarbleException;
import dev.marble.weights.TensorSource;
import dev.marble.weights.ldm.LdmCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** A single-file LDM checkpoint seen as {@link ModelFiles}. */
final class SingleFile implements ModelFiles {
    private final Path file;
    private final LdmCheckpoint checkpoint;
    private final Path tokenizer;

    SingleFile(Path file, LdmCheckpoint checkpoint, Path tokenizer) {
        this.file = file;
        this.checkpoint = checkpoint;
        this.tokenizer = tokenizer;
    }

    @Override
    public String name() {
        String n = file.getFileName().toString();
        return n.substring(0, n.length() - ".safetensors".length());
    }

    @Override
    public JsonNode config(Component c) {
        return switch (c) {
            case UNET -> checkpoint.unetConfig();
            case VAE -> checkpoint.vaeConfig();
            case TEXT_ENCODER -> checkpoint.textEncoderConfig();
            case SCHEDULER -> checkpoint.schedulerConfig();
            case TOKENIZER -> throw new IllegalArgumentException("the tokenizer has no config here");
        };
    }

    @Override
    public TensorSource weights(Component c) {
        return switch (c) {
            case UNET -> checkpoint.unet();
            case VAE -> checkpoint.vae();
            case TEXT_ENCODER -> checkpoint.textEncoder();
            default -> throw new IllegalArgumentException(c + " has no weights");
        };
    }

    /**
     * {@code --tokenizer DIR}, else a {@code tokenizer/} folder beside the file, else the tokenizer
     * of a diffusers folder beside it named like the file ({@code sd15.safetensors} → {@code sd15/}).
     */
    @Override
    public Path tokenizerDir() {
        if (tokenizer != null) {
            return tokenizer;
        }
        Path dir = file.toAbsolutePath().getParent();
        String stem = name();
        List<Path> candidates = new ArrayList<>();
        candidates.add(dir.resolve("tokenizer"));
        candidates.add(dir.resolve(stem).resolve("tokenizer"));
        int dot = stem.indexOf('.');
        if (dot > 0) {
            candidates.add(dir.resolve(stem.substring(0, dot)).resolve("tokenizer"));
        }
        for (Path p : candidates) {
            if (Files.isRegularFile(p.resolve("vocab.json"))) {
                return p;
            }
        }
        throw new MarbleException(file + ": a single-file checkpoint carries no tokenizer; put its tokenizer folder"
                + " (vocab.json, merges.txt) at " + candidates.get(0) + " or pass --tokenizer DIR");
    }

    @Override
    public Path hashFile() {
        return file;
    }

    @Override
    public void close() {
        checkpoint.close();
    }
}
