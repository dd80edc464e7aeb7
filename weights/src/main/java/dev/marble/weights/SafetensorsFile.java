package dev.marble.weights;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.Collections;
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
 * data, with offsets relative to its start. As in the reference implementation, the byte ranges must
 * tile the data exactly: no overlap, no hole, no trailing bytes.
 *
 * <p>Opening reads only the header into the heap (at most {@link #MAX_HEADER_BYTES}); the data is
 * mapped, not read, so opening a multi-gigabyte file takes milliseconds.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Headers larger than this are rejected, as the reference implementation does. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    /** Longest excerpt of a JSON parser message quoted in an error. */
    private static final int MAX_QUOTE = 160;

    /**
     * Top-level and entry objects are walked by hand (so a duplicate gets a precise message); any
     * deeper object with a repeated key is still rejected by the tree reader.
     */
    private static final ObjectMapper JSON = JsonMapper.builder()
            .enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY)
            .build();

    private final Path path;
    private final Arena arena;
    private final MemorySegment data;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;
    private boolean closed;

    private SafetensorsFile(Path path, Arena arena, MemorySegment data, Map<String, TensorInfo> tensors,
            Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.data = data;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /** Maps and validates {@code path}. Nothing stays open on failure. */
    public static SafetensorsFile open(Path path) {
        BasicFileAttributes attrs;
        try {
            attrs = Files.readAttributes(path, BasicFileAttributes.class);
        } catch (NoSuchFileException e) {
            throw fail(path, "no such file");
        } catch (IOException e) {
            throw fail(path, "cannot read: " + e.getMessage());
        }
        // A FIFO or device would block or stream forever; a directory cannot be mapped.
        if (attrs.isDirectory()) {
            throw fail(path, "is a directory, not a safetensors file");
        }
        if (!attrs.isRegularFile()) {
            throw fail(path, "is not a regular file");
        }
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            // Tensors are zero-copy views read in native order; safetensors data is little-endian.
            throw fail(path, "cannot map safetensors data on a big-endian platform");
        }
        Arena arena = Arena.ofShared();
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size == 0) {
                throw fail(path, "file is empty");
            }
            if (size < 8) {
                throw fail(path, "file of " + size + " bytes is too short for the 8-byte header length");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0, path);
            long n = lenBuf.getLong(0);
            // Checked before any allocation: the length is untrusted (unsigned, possibly 2^64 - 1).
            if (n <= 0 || n > MAX_HEADER_BYTES) {
                throw fail(path, "header length " + Long.toUnsignedString(n) + " is not in 1.." + MAX_HEADER_BYTES);
            }
            if (n > size - 8) {
                throw fail(path, "header length " + n + " runs past the end of the " + size
                        + "-byte file (truncated?)");
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
            throw fail(path, "no such file");
        } catch (IOException e) {
            arena.close();
            throw fail(path, "cannot read: " + e.getMessage());
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    private record Header(Map<String, TensorInfo> tensors, Map<String, String> metadata) {
    }

    private static Header parseHeader(Path path, String json, long dataSize) {
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        String at = "";
        try (JsonParser p = JSON.createParser(json)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw fail(path, "header is not a JSON object");
            }
            boolean sawMetadata = false;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                p.nextToken();
                if (name.equals("__metadata__")) {
                    if (sawMetadata) {
                        throw fail(path, "duplicate __metadata__ entry");
                    }
                    sawMetadata = true;
                    at = " in __metadata__";
                    readMetadata(path, p, metadata);
                } else {
                    if (tensors.containsKey(name)) {
                        throw fail(path, "duplicate tensor name '" + name + "'");
                    }
                    at = " in tensor '" + name + "'";
                    tensors.put(name, parseTensor(path, name, readEntry(path, name, p), dataSize));
                }
                at = "";
            }
            if (p.nextToken() != null) {
                throw fail(path, "header has trailing content after the JSON object");
            }
        } catch (JsonProcessingException e) {
            throw fail(path, "header is not valid JSON" + at + ": " + jsonProblem(e));
        } catch (IOException e) {
            throw fail(path, "header cannot be parsed: " + e.getMessage());
        }
        checkLayout(path, tensors, dataSize);
        return new Header(Collections.unmodifiableMap(tensors), Collections.unmodifiableMap(metadata));
    }

    /** Reads {@code __metadata__} (parser on its first token): null or an object of string to string. */
    private static void readMetadata(Path path, JsonParser p, Map<String, String> out) throws IOException {
        if (p.currentToken() == JsonToken.VALUE_NULL) {
            return; // the reference accepts an absent (null) map
        }
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw fail(path, "__metadata__ is not an object of string to string");
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String key = p.currentName();
            JsonToken v = p.nextToken();
            if (out.containsKey(key)) {
                throw fail(path, "duplicate __metadata__ key '" + key + "'");
            }
            if (v != JsonToken.VALUE_STRING) {
                throw fail(path, "__metadata__ value for '" + key + "' is not a string");
            }
            out.put(key, p.getText());
        }
    }

    /** Reads one tensor entry object (parser on its first token), rejecting repeated fields. */
    private static Map<String, JsonNode> readEntry(Path path, String name, JsonParser p) throws IOException {
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw fail(path, name, "entry is not an object");
        }
        Map<String, JsonNode> fields = new LinkedHashMap<>();
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String key = p.currentName();
            p.nextToken();
            JsonNode value = p.readValueAsTree();
            if (fields.putIfAbsent(key, value) != null) {
                throw fail(path, name, "duplicate field '" + key + "'");
            }
        }
        return fields;
    }

    private static TensorInfo parseTensor(Path path, String name, Map<String, JsonNode> v, long dataSize) {
        JsonNode dt = v.get("dtype");
        if (dt == null) {
            throw fail(path, name, "missing field 'dtype'");
        }
        if (!dt.isTextual()) {
            throw fail(path, name, "dtype " + quote(dt) + " is not a string");
        }
        DType dtype;
        try {
            dtype = DType.parse(dt.asText());
        } catch (MarbleException e) {
            throw fail(path, name, "unknown dtype " + quote(dt));
        }
        JsonNode sh = v.get("shape");
        if (sh == null) {
            throw fail(path, name, "missing field 'shape'");
        }
        if (!sh.isArray()) {
            throw fail(path, name, "shape " + quote(sh) + " is not an array");
        }
        long[] shape = new long[sh.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = sh.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                throw fail(path, name, "shape " + quote(sh) + " has a dimension that is not a non-negative integer");
            }
            shape[i] = d.asLong();
            try {
                numel = Math.multiplyExact(numel, shape[i]);
            } catch (ArithmeticException ex) {
                throw fail(path, name, "shape " + quote(sh) + " has more elements than a long can count");
            }
        }
        JsonNode off = v.get("data_offsets");
        if (off == null) {
            throw fail(path, name, "missing field 'data_offsets'");
        }
        if (!off.isArray() || off.size() != 2) {
            throw fail(path, name, "data_offsets " + quote(off) + " is not [begin, end]");
        }
        long[] be = new long[2];
        for (int i = 0; i < 2; i++) {
            JsonNode d = off.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.asLong() < 0) {
                throw fail(path, name, "data_offsets " + quote(off) + " are not non-negative integers");
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
            throw fail(path, name, "shape " + sh + " of " + dtype.safetensorsName() + " has more bytes than a long can count");
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
        TensorInfo prev = null;
        for (TensorInfo t : sorted) {
            if (t.begin() < pos) {
                throw fail(path, t.name(), "data range [" + t.begin() + ", " + t.end() + ") overlaps tensor '"
                        + prev.name() + "' at [" + prev.begin() + ", " + prev.end() + ")");
            }
            if (t.begin() > pos) {
                throw fail(path, t.name(), "hole of " + (t.begin() - pos) + " unused data bytes before its range ["
                        + t.begin() + ", " + t.end() + ")");
            }
            pos = t.end();
            prev = t;
        }
        if (pos != dataSize) {
            throw fail(path, (dataSize - pos) + " unused data bytes after the last tensor"
                    + (prev == null ? "" : " ('" + prev.name() + "' ends at " + pos + ")"));
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

    /** The parser's complaint, one line and bounded (it may quote a huge token). */
    private static String jsonProblem(JsonProcessingException e) {
        String msg = e.getOriginalMessage() == null ? e.getClass().getSimpleName() : e.getOriginalMessage();
        msg = msg.lines().findFirst().orElse("").strip();
        if (msg.length() > MAX_QUOTE) {
            msg = msg.substring(0, MAX_QUOTE) + "...";
        }
        var loc = e.getLocation();
        return loc == null || loc.getCharOffset() < 0 ? msg : msg + " (at char " + loc.getCharOffset() + ")";
    }

    /** A JSON value for an error message, shortened if long. */
    private static String quote(JsonNode v) {
        String s = v.toString();
        return s.length() > MAX_QUOTE ? s.substring(0, MAX_QUOTE) + "..." : s;
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
        if (!arena.scope().isAlive()) {
            throw new MarbleException(path + ": tensor '" + name + "' read after the file was closed");
        }
        return Tensor.wrap(data.asSlice(t.begin(), t.byteSize()), t.dtype(), t.shape());
    }

    /** The {@code __metadata__} map (empty if absent). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Bytes in the data section (file size minus the header). */
    public long dataSize() {
        return data.byteSize();
    }

    /** Reads one byte at data offset {@code off}: for tests that spot-check the mapping. */
    byte byteAt(long off) {
        return data.get(ValueLayout.JAVA_BYTE, off);
    }

    /** Unmaps the file; every tensor view becomes invalid. Closing twice is harmless. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            arena.close();
        }
    }
}
