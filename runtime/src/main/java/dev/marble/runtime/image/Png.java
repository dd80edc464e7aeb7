package dev.marble.runtime.image;

import dev.marble.tensors.MarbleException;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.Deflater;
import java.util.zip.DeflaterOutputStream;

/**
 * Writes 8-bit RGB PNGs with tEXt chunks (A1111 stores its generation parameters under the key
 * "parameters"). The file is written beside its target under a temporary name and renamed into
 * place, so a failure or Ctrl-C never leaves a half-written file under the final name.
 */
public final class Png {
    private static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    private Png() {
    }

    /** Encodes {@code rgb} (H·W·3 bytes, row-major) with the given text chunks. */
    public static byte[] encode(int width, int height, byte[] rgb, Map<String, String> text) {
        if (rgb.length != (long) width * height * 3) {
            throw new MarbleException("PNG: " + rgb.length + " bytes do not make a " + width + "x" + height + " RGB image");
        }
        try {
            ByteArrayOutputStream out = new ByteArrayOutputStream(rgb.length / 2 + 1024);
            out.write(SIGNATURE);
            ByteArrayOutputStream ihdr = new ByteArrayOutputStream();
            DataOutputStream d = new DataOutputStream(ihdr);
            d.writeInt(width);
            d.writeInt(height);
            d.writeByte(8); // bit depth
            d.writeByte(2); // colour type: truecolour
            d.writeByte(0); // deflate
            d.writeByte(0); // adaptive filtering
            d.writeByte(0); // no interlace
            chunk(out, "IHDR", ihdr.toByteArray());
            for (Map.Entry<String, String> e : text.entrySet()) {
                if (isLatin1(e.getValue())) {
                    chunk(out, "tEXt", textChunk(e.getKey(), e.getValue()));
                } else {
                    chunk(out, "iTXt", internationalTextChunk(e.getKey(), e.getValue()));
                }
            }
            chunk(out, "IDAT", deflateRows(width, height, rgb));
            chunk(out, "IEND", new byte[0]);
            return out.toByteArray();
        } catch (IOException e) {
            throw new MarbleException("PNG encoding failed: " + e.getMessage(), e);
        }
    }

    /** Encodes and writes atomically to {@code path}. */
    public static void write(Path path, int width, int height, byte[] rgb, Map<String, String> text) {
        byte[] bytes = encode(width, height, rgb, text);
        writeAtomically(path, bytes);
    }

    /** Writes {@code bytes} to a temporary file beside {@code path}, then renames it into place. */
    public static void writeAtomically(Path path, byte[] bytes) {
        Path abs = path.toAbsolutePath();
        Path dir = abs.getParent();
        Path tmp = null;
        try {
            if (dir != null) {
                Files.createDirectories(dir);
            }
            tmp = Files.createTempFile(dir, "." + abs.getFileName(), ".part");
            tmp.toFile().deleteOnExit();
            try {
                // Temporary files are private (0600); the image is an ordinary output file.
                Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r--r--"));
            } catch (UnsupportedOperationException e) {
                // Not a POSIX file system: the default permissions stand.
            }
            try (OutputStream o = Files.newOutputStream(tmp)) {
                o.write(bytes);
            }
            try {
                Files.move(tmp, abs, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, abs, StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new MarbleException(path + ": cannot write: " + e.getMessage(), e);
        } finally {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // Already renamed or never created; nothing left to clean.
                }
            }
        }
    }

    private static boolean isLatin1(String s) {
        return s.chars().allMatch(c -> c < 256);
    }

    /** tEXt: keyword, NUL, Latin-1 text. */
    private static byte[] textChunk(String key, String value) {
        byte[] k = key.getBytes(StandardCharsets.ISO_8859_1);
        byte[] v = value.getBytes(StandardCharsets.ISO_8859_1);
        byte[] out = new byte[k.length + 1 + v.length];
        System.arraycopy(k, 0, out, 0, k.length);
        System.arraycopy(v, 0, out, k.length + 1, v.length);
        return out;
    }

    /**
     * iTXt for text beyond Latin-1 (a CJK prompt), as PIL writes it: keyword, NUL, compression flag 0,
     * method 0, empty language tag and translated keyword (each NUL-terminated), UTF-8 text.
     */
    private static byte[] internationalTextChunk(String key, String value) {
        byte[] k = key.getBytes(StandardCharsets.ISO_8859_1);
        byte[] v = value.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[k.length + 5 + v.length];
        System.arraycopy(k, 0, out, 0, k.length);
        System.arraycopy(v, 0, out, k.length + 5, v.length);
        return out;
    }

    /** Each row gets filter type 0 (None): simple, and deflate does well on SD images anyway. */
    private static byte[] deflateRows(int width, int height, byte[] rgb) throws IOException {
        ByteArrayOutputStream buf = new ByteArrayOutputStream(rgb.length / 2 + 64);
        Deflater def = new Deflater(6);
        try (DeflaterOutputStream z = new DeflaterOutputStream(buf, def)) {
            int stride = width * 3;
            for (int y = 0; y < height; y++) {
                z.write(0);
                z.write(rgb, y * stride, stride);
            }
        } finally {
            def.end();
        }
        return buf.toByteArray();
    }

    private static void chunk(OutputStream out, String type, byte[] data) throws IOException {
        DataOutputStream d = new DataOutputStream(out);
        byte[] t = type.getBytes(StandardCharsets.US_ASCII);
        d.writeInt(data.length);
        d.write(t);
        d.write(data);
        CRC32 crc = new CRC32();
        crc.update(t);
        crc.update(data);
        d.writeInt((int) crc.getValue());
    }
}
