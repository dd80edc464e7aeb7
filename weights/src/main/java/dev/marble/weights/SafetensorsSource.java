package dev.marble.weights;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** The tensors of one or more safetensors files (shards) as one {@link TensorSource}. */
public final class SafetensorsSource implements TensorSource {
    private final List<SafetensorsFile> files;
    private final Map<String, SafetensorsFile> byKey = new LinkedHashMap<>();
    private final String description;

    private SafetensorsSource(List<SafetensorsFile> files, String description) {
        this.files = files;
        this.description = description;
        for (SafetensorsFile f : files) {
            for (String name : f.names()) {
                SafetensorsFile prev = byKey.putIfAbsent(name, f);
                if (prev != null) {
                    close();
                    throw new MarbleException(f.path() + ": tensor '" + name + "' is also in " + prev.path());
                }
            }
        }
    }

    /** Opens the given files; all are closed again if any fails. */
    public static SafetensorsSource open(List<Path> paths, String description) {
        List<SafetensorsFile> opened = new ArrayList<>();
        try {
            for (Path p : paths) {
                opened.add(SafetensorsFile.open(p));
            }
        } catch (RuntimeException e) {
            opened.forEach(SafetensorsFile::close);
            throw e;
        }
        return new SafetensorsSource(opened, description);
    }

    public static SafetensorsSource open(Path path) {
        return open(List.of(path), path.toString());
    }

    @Override
    public boolean contains(String key) {
        return byKey.containsKey(key);
    }

    @Override
    public Tensor get(String key) {
        SafetensorsFile f = byKey.get(key);
        if (f == null) {
            throw new MarbleException(description + ": missing tensor '" + key + "'");
        }
        return f.tensor(key);
    }

    @Override
    public Set<String> keys() {
        return byKey.keySet();
    }

    /** The merged {@code __metadata__} of all files. */
    public Map<String, String> metadata() {
        Map<String, String> m = new LinkedHashMap<>();
        files.forEach(f -> m.putAll(f.metadata()));
        return m;
    }

    @Override
    public String describe() {
        return description;
    }

    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }
}
