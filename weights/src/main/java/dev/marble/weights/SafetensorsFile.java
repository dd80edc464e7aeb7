package dev.marble.weights;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One memory-mapped safetensors file. The file is mapped once; each tensor is a zero-copy view into
 * the mapping. Every header field is untrusted and validated before use. The mapping lives until
 * {@link #close()}.
 *
 * <p>Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * {@code {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}}, then the
 * data, with offsets relative to its start.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Headers larger than this are rejected, as the reference implementation does. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private final Path path;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, Arena arena, MemorySegment data, Map<String, TensorInfo> tensors,
            Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /** Maps and validates {@code path}. The file is closed on any failure. */
    public static SafetensorsFile open(Path path) {
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw fail(path, "file of " + size + " bytes is too short for a safetensors header");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0, path);
            long n = lenBuf.getLong(0);
            if (n <= 0 || n > MAX_HEADER_BYTES) {
                throw fail(path, "header length " + Long.toUnsignedString(n) + " is not in 1.." + MAX_HEADER_BYTES);
            }
            if (8 + n > size) {
                throw fail(path, "header length " + n + " runs past the end of the " + size + "-byte file (truncated?)");
            }
            ByteBuffer header = ByteBuffer.allocate((int) n);
            readFully(ch, header, 8, path);
            String json;
            try {
                json = StandardCharsets.UTF_8.newDecoder()
                        .onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT)
                        .decode(header.flip()).toString();
            } catch (CharacterCodingException e) {
                throw fail(path, "header is not valid UTF-8");
            }
            long dataSize = size - 8 - n;
            Header h = parseHeader(path, json, dataSize);
            MemorySegment mapped = dataSize == 0 ? MemorySegment.NULL
                    : ch.map(FileChannel.MapMode.READ_ONLY, 8 + n, dataSize, arena);
            return new SafetensorsFile(path, arena, mapped, h.tensors, h.metadata);
        } catch (NoSuchFileException e) {
            arena.close();
            throw new MarbleException(path + ": no such file");
        } catch (IOException e) {
            arena.close();
            throw new MarbleException(path + ": cannot read: " + e.getMessage());
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private record Header(Map<String, TensorInfo> tensors, Map<String, String> metadata) {
    }

    private static Header parseHeader(Path path, String json, long dataSize) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (IOException e) {
            String msg = e.getMessage() == null ? "" : e.getMessage().lines().findFirst().orElse("");
            throw fail(path, "header is not valid JSON: " + msg);
        }
        if (root == null || !root.isObject()) {
            throw fail(path, "header is not a JSON object");
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = ((ObjectNode) root).fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            JsonNode v = e.getValue();
            if (name.equals("__metadata__")) {
                if (!v.isObject()) {
                    throw fail(path, "__metadata__ is not an object");
                }
                for (Iterator<Map.Entry<String, JsonNode>> m = v.fields(); m.hasNext(); ) {
                    Map.Entry<String, JsonNode> me = m.next();
                    if (!me.getValue().isTextual()) {
                        throw fail(path, "__metadata__ value for '" + me.getKey() + "' is not a string");
                    }
                    metadata.put(me.getKey(), me.getValue().asText());
                }
                continue;
            }
            tensors.put(name, parseTensor(path, name, v, dataSize));
        }
        checkLayout(path, tensors, dataSize);
        return new Header(Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
    }

    private static TensorInfo parseTensor(Path path, String name, JsonNode v, long dataSize) {
        if (!v.isObject()) {
            throw fail(path, name, "entry is not an object");
        }
        JsonNode dt = v.get("dtype");
        if (dt == null || !dt.isTextual()) {
            throw fail(path, name, "missing dtype");
        }
        DType dtype;
        try {
            dtype = DType.parse(dt.asText());
        } catch (MarbleException e) {
            throw fail(path, name, "unknown dtype '" + dt.asText() + "'");
        }
        JsonNode sh = v.get("shape");
        if (sh == null || !sh.isArray()) {
            throw fail(path, name, "missing shape");
        }
        long[] shape = new long[sh.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                throw fail(path, name, "shape " + sh + " has a dimension that is not a non-negative integer");
            }
            shape[i] = d.asLong();
            try {
                numel = Math.multiplyExact(numel, shape[i]);
            } catch (ArithmeticException ex) {
                throw fail(path, name, "shape " + sh + " overflows");
            }
        }
        JsonNode off = v.get("data_offsets");
        if (off == null || !off.isArray() || off.size() != 2) {
            throw fail(path, name, "data_offsets must be [begin, end]");
        }
        long[] be = new long[2];
        for (int i = 0; i < 2; i++) {
            JsonNode d = off.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                throw fail(path, name, "data_offsets " + off + " are not non-negative integers");
            }
            be[i] = d.asLong();
        }
        if (be[0] > be[1]) {
            throw fail(path, name, "data_offsets " + off + " end before they begin");
        }
        if (be[1] > dataSize) {
            throw fail(path, name, "data_offsets " + off + " run past the " + dataSize + " data bytes (truncated?)");
        }
        long bytes;
        try {
            bytes = Math.multiplyExact(numel, dtype.byteSize());
        } catch (ArithmeticException ex) {
            throw fail(path, name, "shape " + sh + " overflows");
        }
        if (bytes != be[1] - be[0]) {
            throw fail(path, name, "shape " + sh + " of " + dtype.safetensorsName() + " needs " + bytes
                    + " bytes but data_offsets " + off + " span " + (be[1] - be[0]));
        }
        return new TensorInfo(name, dtype, shape, be[0], be[1]);
    }

    /** Ranges must tile the data exactly: no overlap, no hole, nothing after the last tensor. */
    private static void checkLayout(Path path, Map<String, TensorInfo> tensors, long dataSize) {
        List<TensorInfo> sorted = new ArrayList<>(tensors.values());
        sorted.sort((a, b) -> a.begin() != b.begin() ? Long.compare(a.begin(), b.begin())
                : Long.compare(a.end(), b.end()));
        long pos = 0;
        for (TensorInfo t : sorted) {
            if (t.begin() < pos) {
                throw fail(path, t.name(), "data range [" + t.begin() + ", " + t.end() + ") overlaps another tensor");
            }
            if (t.begin() > pos) {
                throw fail(path, t.name(), "hole of " + (t.begin() - pos) + " bytes before its data at " + t.begin());
            }
            pos = t.end();
        }
        if (pos != dataSize) {
            throw fail(path, (pos < dataSize ? (dataSize - pos) + " unused bytes after the last tensor"
                    : "data ends early"));
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long pos, Path path) throws IOException {
        while (buf.hasRemaining()) {
            int r = ch.read(buf, pos + buf.position());
            if (r < 0) {
                throw fail(path, "file is truncated");
            }
        }
    }

    static MarbleException fail(Path path, String what) {
        return new MarbleException(path + ": " + what);
    }

    static MarbleException fail(Path path, String tensor, String what) {
        return new MarbleException(path + ": tensor '" + tensor + "': " + what);
    }

    public Path path() {
        return path;
    }

    /** Tensor names in header order. */
    public List<String> names() {
        return List.copyOf(tensors.keySet());
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /** The header entry for {@code name}, or a one-line error if it is missing. */
    public TensorInfo info(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) {
            throw new MarbleException(path + ": missing tensor '" + name + "'");
        }
        return t;
    }

    /** All header entries, in header order. */
    public Map<String, TensorInfo> infos() {
        return tensors;
    }

    /** A zero-copy view of tensor {@code name}; valid until this file is closed. */
    public Tensor tensor(String name) {
        TensorInfo t = info(name);
        MemorySegment view = t.byteSize() == 0 ? Arena.global().allocate(1).asSlice(0, 0)
                : data.asSlice(t.begin(), t.byteSize());
        return Tensor.wrap(view, t.dtype(), t.shape());
    }

    /** The {@code __metadata__} map (empty if absent). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Reads one byte at data offset {@code off}: for tests that spot-check the mapping. */
    byte byteAt(long off) {
        return data.get(ValueLayout.JAVA_BYTE, off);
    }

    @Override
    public void close() {
        arena.close();
    }
}
