package dev.marble.weights;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.marble.tensors.MarbleException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;

/**
 * Reads the JSON files of model folders (configs, indexes, model_index.json) with one-line errors
 * that name the file. Parsing follows Python's {@code json} module, which wrote them: NaN and
 * Infinity are accepted and a repeated key keeps its last value.
 */
public final class JsonFiles {
    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS)
            .build();

    private JsonFiles() {
    }

    /** The JSON object in {@code file}; a missing file, bad JSON or a non-object is a one-line error. */
    public static JsonNode readObject(Path file) {
        if (Files.isDirectory(file)) {
            throw new MarbleException(file + ": is a directory, expected a JSON file");
        }
        JsonNode root;
        try (InputStream in = Files.newInputStream(file)) {
            root = JSON.readTree(in);
        } catch (NoSuchFileException e) {
            throw new MarbleException(file + ": no such file");
        } catch (JsonProcessingException e) {
            String msg = e.getOriginalMessage() == null ? "" : e.getOriginalMessage().lines().findFirst().orElse("");
            if (msg.length() > 160) {
                msg = msg.substring(0, 160) + "...";
            }
            var loc = e.getLocation();
            throw new MarbleException(file + ": not valid JSON: " + msg
                    + (loc == null ? "" : " (line " + loc.getLineNr() + ", column " + loc.getColumnNr() + ")"));
        } catch (IOException e) {
            throw new MarbleException(file + ": cannot read: " + e.getMessage());
        }
        if (root == null || root.isMissingNode()) {
            throw new MarbleException(file + ": empty, expected a JSON object");
        }
        if (!root.isObject()) {
            throw new MarbleException(file + ": expected a JSON object, found " + root.getNodeType().name().toLowerCase(java.util.Locale.ROOT));
        }
        return root;
    }
}
