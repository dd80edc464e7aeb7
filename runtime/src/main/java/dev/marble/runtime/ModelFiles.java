package dev.marble.runtime;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.tensors.MarbleException;
import dev.marble.weights.TensorSource;
import dev.marble.weights.ldm.LdmCheckpoint;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where a model's components come from: a diffusers folder or a single-file checkpoint. Both give
 * each component's diffusers-style config and its weights under diffusers' key names, so one set of
 * model classes serves both.
 */
public interface ModelFiles extends AutoCloseable {
    /** A short name for the model (folder or file name), as A1111's "Model:" field shows it. */
    String name();

    /** The component's config (config.json or scheduler_config.json, or one derived from a checkpoint). */
    JsonNode config(Component c);

    /** The component's weights; the source stays open until {@link #close()}. */
    TensorSource weights(Component c);

    /** The tokenizer folder (vocab.json, merges.txt, ...). */
    Path tokenizerDir();

    /** The file whose SHA-256 is the model hash (A1111's AutoV2 for a single file). */
    Path hashFile();

    @Override
    void close();

    /** Opens a diffusers folder or a single .safetensors checkpoint. */
    static ModelFiles open(Path path, LoadOptions options) {
        if (Files.isDirectory(path)) {
            return DiffusersFolder.open(path, options);
        }
        if (Files.isRegularFile(path)) {
            if (!path.getFileName().toString().endsWith(".safetensors")) {
                throw new MarbleException(path + ": not a .safetensors checkpoint or a diffusers folder");
            }
            return new SingleFile(path, LdmCheckpoint.open(path, options.originalConfig()), options.tokenizerDir());
        }
        throw new MarbleException(path + ": no such model file or folder");
    }
}
