package dev.marble.weights;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The tensors of one or more safetensors files (shards) as one {@link TensorSource}. A tensor name
 * may appear in only one file. Closing the source unmaps every file.
 */
public final class SafetensorsSource implements TensorSource {
    /** Suffix of a sharded checkpoint's index, as transformers and diffusers write it. */
    public static final String INDEX_SUFFIX = ".index.json";

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

    /**
     * One safetensors file, or a sharded checkpoint if {@code path} names its JSON index
     * ({@code *.safetensors.index.json}, or {@code *.safetensors.index.fp16.json} for a variant).
     */
    public static SafetensorsSource open(Path path) {
        if (path.getFileName() != null && path.getFileName().toString().endsWith(".json")) {
            return openIndex(path);
        }
        return open(List.of(path), path.toString());
    }

    /**
     * A sharded checkpoint: {@code index} is JSON {@code {"metadata": {...}, "weight_map": {tensor:
     * shard file}}} with the shard files beside it. Every shard must exist and hold the tensors the
     * map assigns to it.
     */
    public static SafetensorsSource openIndex(Path index) {
        JsonNode root = JsonFiles.readObject(index);
        JsonNode map = root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new MarbleException(index + ": no \"weight_map\" object of tensor name to shard file");
        }
        if (map.isEmpty()) {
            throw new MarbleException(index + ": \"weight_map\" is empty");
        }
        Path dir = index.toAbsolutePath().getParent();
        Map<String, String> shardOf = new LinkedHashMap<>();
        Map<String, Path> shards = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            JsonNode v = e.getValue();
            if (!v.isTextual()) {
                throw new MarbleException(index + ": weight_map entry for '" + e.getKey() + "' is not a file name");
            }
            String shard = v.asText();
            shardOf.put(e.getKey(), shard);
            if (!shards.containsKey(shard)) {
                shards.put(shard, resolveShard(index, dir, shard));
            }
        }
        for (Map.Entry<String, Path> s : shards.entrySet()) {
            if (!Files.exists(s.getValue())) {
                long n = shardOf.values().stream().filter(s.getKey()::equals).count();
                String first = shardOf.entrySet().stream().filter(x -> x.getValue().equals(s.getKey()))
                        .findFirst().orElseThrow().getKey();
                throw new MarbleException(index + ": shard file " + s.getValue() + " is missing (it holds " + n
                        + " tensor" + (n == 1 ? "" : "s") + ", e.g. '" + first + "')");
            }
        }
        SafetensorsSource source = open(new ArrayList<>(shards.values()), index.toString());
        for (Map.Entry<String, String> e : shardOf.entrySet()) {
            SafetensorsFile f = source.byKey.get(e.getKey());
            Path expected = shards.get(e.getValue());
            if (f == null || !f.path().equals(expected)) {
                source.close();
                throw new MarbleException(index + ": tensor '" + e.getKey() + "' is mapped to shard " + e.getValue()
                        + (f == null ? ", which does not contain it" : " but is in " + f.path().getFileName()));
            }
        }
        return source;
    }

    /** Shards live beside the index: a name that climbs out of that directory is refused. */
    private static Path resolveShard(Path index, Path dir, String shard) {
        Path p = dir.resolve(shard).normalize();
        if (shard.isEmpty() || !p.getParent().equals(dir.normalize())) {
            throw new MarbleException(index + ": shard name '" + shard + "' is not a file name beside the index");
        }
        return p;
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

    /** The header entry of {@code key} (dtype, shape) without touching its data. */
    public TensorInfo info(String key) {
        SafetensorsFile f = byKey.get(key);
        if (f == null) {
            throw new MarbleException(description + ": missing tensor '" + key + "'");
        }
        return f.info(key);
    }

    @Override
    public Set<String> keys() {
        return Collections.unmodifiableSet(byKey.keySet());
    }

    /** The files, in the order they were opened. */
    public List<SafetensorsFile> files() {
        return Collections.unmodifiableList(files);
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
