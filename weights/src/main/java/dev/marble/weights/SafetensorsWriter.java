package dev.marble.weights;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes tensors to a safetensors file, crash-safely: the bytes go to a hidden temporary file in the
 * target's directory, which is fsynced and then atomically renamed over the target. A crash, an
 * exception or Ctrl-C therefore never leaves a partial file under the final name (the temporary file
 * is deleted on failure and at JVM shutdown). Readers that still map an old file under that name keep
 * a valid mapping: the rename replaces the directory entry, not the old file's bytes.
 *
 * <p>Layout follows the reference writer: tensors sorted by element size (largest first, so every
 * tensor stays aligned to its element size) then by name; the header lists {@code __metadata__} first,
 * then the tensors in data order, and is padded with spaces to a multiple of 8 bytes. Data is streamed
 * from the tensors' memory in bounded chunks; the file is never assembled in the heap.
 */
public final class SafetensorsWriter {
    /** Bytes copied per write call; also the size of the gather buffer for non-contiguous views. */
    private static final int CHUNK = 4 << 20;

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Temporary files being written, deleted by a shutdown hook if the JVM exits mid-write. */
    private static final Set<Path> IN_PROGRESS = ConcurrentHashMap.newKeySet();

    static {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for (Path p : IN_PROGRESS) {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException ignored) {
                    // best effort while the JVM exits
                }
            }
        }, "marble-safetensors-cleanup"));
    }

    private SafetensorsWriter() {
    }

    /** Writes {@code tensors} without metadata. */
    public static void write(Path target, Map<String, Tensor> tensors) {
        write(target, tensors, Map.of());
    }

    /**
     * Writes {@code tensors} (any dtype, contiguous or not) and {@code metadata} to {@code target},
     * replacing it atomically if it exists.
     */
    public static void write(Path target, Map<String, Tensor> tensors, Map<String, String> metadata) {
        List<Map.Entry<String, Tensor>> order = validateAndOrder(target, tensors, metadata);
        byte[] header = header(target, order, metadata);

        Path dir = target.toAbsolutePath().getParent();
        if (dir == null || !Files.isDirectory(dir)) {
            throw new MarbleException(target + ": directory " + dir + " does not exist");
        }
        Path tmp = dir.resolve("." + target.getFileName() + "."
                + HexFormat.of().toHexDigits(ThreadLocalRandom.current().nextLong()) + ".tmp");
        IN_PROGRESS.add(tmp);
        boolean done = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, header.length);
                writeFully(ch, len);
                writeFully(ch, ByteBuffer.wrap(header));
                try (Arena scratch = Arena.ofConfined()) {
                    MemorySegment gather = null;
                    for (Map.Entry<String, Tensor> e : order) {
                        Tensor t = e.getValue();
                        if (t.byteSize() == 0) {
                            continue;
                        }
                        if (t.isContiguous()) {
                            writeSegment(ch, t.data().asSlice(0, t.byteSize()));
                        } else {
                            if (gather == null) {
                                gather = scratch.allocate(CHUNK, 64);
                            }
                            writeStrided(ch, t, gather);
                        }
                    }
                }
                ch.force(true);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                throw new MarbleException(target + ": the file system cannot rename atomically into " + dir);
            }
            syncDirectory(dir);
            done = true;
        } catch (IOException e) {
            throw new MarbleException(target + ": cannot write: " + e.getMessage(), e);
        } catch (MarbleException e) {
            throw e;
        } catch (RuntimeException e) {
            // E.g. a tensor whose memory was freed, or is owned by another thread's arena.
            throw new MarbleException(target + ": cannot read tensor data: " + e.getMessage(), e);
        } finally {
            if (!done) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // the original error is the one to report
                }
            }
            IN_PROGRESS.remove(tmp);
        }
    }

    private static List<Map.Entry<String, Tensor>> validateAndOrder(Path target, Map<String, Tensor> tensors,
            Map<String, String> metadata) {
        for (Map.Entry<String, String> m : metadata.entrySet()) {
            if (m.getKey() == null || m.getValue() == null) {
                throw new MarbleException(target + ": __metadata__ entry " + m.getKey() + " = " + m.getValue()
                        + " is not string to string");
            }
        }
        List<Map.Entry<String, Tensor>> order = new ArrayList<>();
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            if (e.getKey() == null || e.getKey().equals("__metadata__")) {
                throw new MarbleException(target + ": '" + e.getKey() + "' cannot be a tensor name");
            }
            if (e.getValue() == null) {
                throw new MarbleException(target + ": tensor '" + e.getKey() + "' is null");
            }
            order.add(Map.entry(e.getKey(), e.getValue()));
        }
        order.sort(Comparator.<Map.Entry<String, Tensor>>comparingInt(e -> -e.getValue().dtype().byteSize())
                .thenComparing(Map.Entry::getKey));
        return order;
    }

    /** The header JSON, space-padded so that the data starts at a multiple of 8 bytes. */
    private static byte[] header(Path target, List<Map.Entry<String, Tensor>> order, Map<String, String> metadata) {
        ObjectNode root = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode m = root.putObject("__metadata__");
            metadata.entrySet().stream().sorted(Map.Entry.comparingByKey())
                    .forEach(e -> m.put(e.getKey(), e.getValue()));
        }
        long offset = 0;
        for (Map.Entry<String, Tensor> e : order) {
            Tensor t = e.getValue();
            ObjectNode n = root.putObject(e.getKey());
            n.put("dtype", t.dtype().safetensorsName());
            ArrayNode shape = n.putArray("shape");
            Arrays.stream(t.shape()).forEach(shape::add);
            long end = offset + t.byteSize();
            n.putArray("data_offsets").add(offset).add(end);
            offset = end;
        }
        byte[] json;
        try {
            json = JSON.writeValueAsString(root).getBytes(StandardCharsets.UTF_8);
        } catch (JsonProcessingException e) {
            throw new MarbleException(target + ": cannot encode header: " + e.getOriginalMessage());
        }
        int padded = (json.length + 7) & ~7;
        if (padded > SafetensorsFile.MAX_HEADER_BYTES) {
            throw new MarbleException(target + ": header of " + padded + " bytes exceeds the "
                    + SafetensorsFile.MAX_HEADER_BYTES + "-byte limit readers enforce");
        }
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    /** Copies a contiguous segment to the channel in chunks (a ByteBuffer view holds at most 2 GB). */
    private static void writeSegment(FileChannel ch, MemorySegment seg) throws IOException {
        for (long off = 0; off < seg.byteSize(); off += CHUNK) {
            long n = Math.min(CHUNK, seg.byteSize() - off);
            writeFully(ch, seg.asSlice(off, n).asByteBuffer());
        }
    }

    /**
     * Gathers a strided view in logical (row-major) order through {@code buf}. The innermost dimensions
     * that are laid out contiguously form runs copied in one call; the next dimension out is walked in
     * a tight loop and the remaining outer ones by index.
     */
    private static void writeStrided(FileChannel ch, Tensor t, MemorySegment buf) throws IOException {
        long[] shape = t.shape();
        long[] strides = t.strides();
        int es = t.dtype().byteSize();
        // The longest suffix of dimensions that is row-major among itself forms one run.
        int inner = shape.length;
        long run = 1;
        while (inner > 0 && (strides[inner - 1] == run || shape[inner - 1] == 1)) {
            run *= shape[inner - 1];
            inner--;
        }
        // A non-contiguous tensor has at least one dimension left: the row walked below.
        int rowDim = inner - 1;
        long rowLen = shape[rowDim];
        long rowStep = strides[rowDim] * es;
        long runBytes = run * es;
        long[] idx = new long[rowDim];
        long rows = 1;
        for (int d = 0; d < rowDim; d++) {
            rows *= shape[d];
        }
        MemorySegment src = t.data();
        long cap = buf.byteSize();
        long filled = 0;
        for (long r = 0; r < rows; r++) {
            long from = 0;
            for (int d = 0; d < rowDim; d++) {
                from += idx[d] * strides[d] * es;
            }
            for (long j = 0; j < rowLen; j++, from += rowStep) {
                long at = from;
                long left = runBytes;
                while (left > 0) {
                    long n = Math.min(left, cap - filled);
                    MemorySegment.copy(src, at, buf, filled, n);
                    filled += n;
                    at += n;
                    left -= n;
                    if (filled == cap) {
                        writeFully(ch, buf.asByteBuffer());
                        filled = 0;
                    }
                }
            }
            for (int d = rowDim - 1; d >= 0; d--) {
                if (++idx[d] < shape[d]) {
                    break;
                }
                idx[d] = 0;
            }
        }
        if (filled > 0) {
            writeFully(ch, buf.asSlice(0, filled).asByteBuffer());
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    /** Makes the rename itself durable; not every platform can open a directory, so best effort. */
    private static void syncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // e.g. Windows: directories cannot be opened as channels
        }
    }
}
