package dev.marble.runtime;

import dev.marble.tensors.MarbleException;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.JarURLConnection;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.stream.Stream;

/**
 * The default model, bundled as class-path resources: a diffusers folder under {@link #ROOT}
 * (model_index.json, scheduler/, tokenizer/, text_encoder/, unet/, vae/). This is the one place
 * the trained shapes model goes; a build without it has no default model.
 *
 * <p>Weights are memory-mapped from files, and an entry inside a jar is no file. Two ways out: read
 * each entry into off-heap memory, or extract the folder once to disk. Extraction wins: the loader
 * stays the one path every other model takes (configs, tokenizer, quantized files alike), the bytes
 * are read once per machine instead of once per run, and the page cache shares them between
 * processes; a few MB on disk is the whole cost. When the resources are a plain directory (tests,
 * an IDE) that directory is used as it is.
 *
 * <p>The copy lives in the user's cache ({@code marble.cache}, else {@code $XDG_CACHE_HOME/marble},
 * else {@code ~/.cache/marble}) under {@code models/<key>/shapes}, where the key hashes every
 * entry's name, size and CRC-32 from the jar's directory (no decompression needed to find it). It is
 * written to a fresh private directory first and renamed into place in one step, so a concurrent
 * first run finds either nothing or a complete copy, and a Ctrl-C leaves only a {@code .partial}
 * directory (removed by a later run). When the cache cannot be written, a temporary directory
 * serves this process alone and is deleted when it exits.
 */
final class BundledModel {
    /** Class-path folder of the bundled model. */
    static final String ROOT = "dev/marble/runtime/models/shapes/";
    /** The folder name the model is loaded from, so its name (as the PNG's parameters show it) is "shapes". */
    private static final String NAME = "shapes";
    private static final Duration STALE = Duration.ofHours(1);

    private BundledModel() {
    }

    /** Whether the resources hold a bundled model. */
    static boolean present(ClassLoader loader, String root) {
        return loader.getResource(root + "model_index.json") != null;
    }

    /** The bundled model as a folder on disk, extracting it first if needed. */
    static Path folder(ClassLoader loader, String root, Path cache) {
        URL index = loader.getResource(root + "model_index.json");
        if (index == null) {
            throw new MarbleException("this build has no bundled model (" + root + " is not on the class path)");
        }
        try {
            return switch (index.getProtocol()) {
                case "file" -> Path.of(index.toURI()).getParent();
                case "jar" -> extract(index, root, cache);
                default -> throw new MarbleException("bundled model: cannot read resources from " + index);
            };
        } catch (URISyntaxException e) {
            throw new MarbleException("bundled model: bad resource location " + index);
        } catch (IOException e) {
            throw new MarbleException("bundled model: " + e.getMessage(), e);
        }
    }

    /** The default cache folder: {@code marble.cache}, else $XDG_CACHE_HOME/marble, else ~/.cache/marble. */
    static Path defaultCache() {
        String prop = System.getProperty("marble.cache");
        if (prop != null && !prop.isBlank()) {
            return Path.of(prop);
        }
        String xdg = System.getenv("XDG_CACHE_HOME");
        if (xdg != null && !xdg.isBlank() && Path.of(xdg).isAbsolute()) {
            return Path.of(xdg, "marble");
        }
        return Path.of(System.getProperty("user.home"), ".cache", "marble");
    }

    /** One file of the model inside the jar: its path below the root, size and CRC-32. */
    private record Entry(JarEntry jar, String relative) {
    }

    private static Path extract(URL index, String root, Path cache) throws IOException {
        JarURLConnection conn = (JarURLConnection) index.openConnection();
        Path jarPath;
        try {
            jarPath = Path.of(conn.getJarFileURL().toURI());
        } catch (URISyntaxException | IllegalArgumentException e) {
            throw new MarbleException("bundled model: the jar " + conn.getJarFileURL() + " is not a local file");
        }
        try (JarFile jar = new JarFile(jarPath.toFile())) {
            List<Entry> entries = new ArrayList<>();
            for (JarEntry e : (Iterable<JarEntry>) jar.stream()::iterator) {
                if (!e.isDirectory() && e.getName().startsWith(root)) {
                    String rel = e.getName().substring(root.length());
                    if (rel.contains("..") || rel.startsWith("/")) {
                        throw new MarbleException("bundled model: bad entry name " + e.getName());
                    }
                    entries.add(new Entry(e, rel));
                }
            }
            entries.sort(Comparator.comparing(Entry::relative));
            String key = key(entries);
            Path models = cache.resolve("models");
            try {
                Files.createDirectories(models);
                Path done = models.resolve(key);
                if (complete(done, entries)) {
                    return done.resolve(NAME);
                }
                removeStale(models);
                Path partial = Files.createTempDirectory(models, key + ".partial-");
                try {
                    write(jar, entries, partial.resolve(NAME));
                    return publish(partial, done, entries).resolve(NAME);
                } finally {
                    deleteTree(partial);
                }
            } catch (IOException | UncheckedIOException e) {
                // Read-only or missing home: a private copy for this process only.
                Path tmp = Files.createTempDirectory("marble-" + NAME + "-");
                Runtime.getRuntime().addShutdownHook(new Thread(() -> deleteTree(tmp)));
                write(jar, entries, tmp.resolve(NAME));
                return tmp.resolve(NAME);
            }
        }
    }

    /** Renames the finished copy into place; if another process got there first, uses theirs. */
    private static Path publish(Path partial, Path done, List<Entry> entries) throws IOException {
        try {
            Files.move(partial, done, StandardCopyOption.ATOMIC_MOVE);
            return done;
        } catch (FileSystemException e) {
            if (complete(done, entries)) {
                return done;
            }
            // An incomplete copy from an older run (files deleted by hand): replace it.
            Path old = done.resolveSibling(done.getFileName() + ".partial-old-" + ProcessHandle.current().pid());
            Files.move(done, old, StandardCopyOption.ATOMIC_MOVE);
            deleteTree(old);
            Files.move(partial, done, StandardCopyOption.ATOMIC_MOVE);
            return done;
        }
    }

    private static void write(JarFile jar, List<Entry> entries, Path dir) throws IOException {
        for (Entry e : entries) {
            Path out = dir.resolve(e.relative());
            Files.createDirectories(out.getParent());
            try (InputStream in = jar.getInputStream(e.jar())) {
                Files.copy(in, out);
            }
        }
    }

    /** Whether {@code done} holds every entry with its size. */
    private static boolean complete(Path done, List<Entry> entries) {
        Path dir = done.resolve(NAME);
        if (!Files.isDirectory(dir)) {
            return false;
        }
        try {
            for (Entry e : entries) {
                Path p = dir.resolve(e.relative());
                if (!Files.isRegularFile(p) || Files.size(p) != e.jar().getSize()) {
                    return false;
                }
            }
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** SHA-256 of every entry's relative name, size and CRC-32, as 16 hex digits. */
    private static String key(List<Entry> entries) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (Entry e : entries) {
                md.update((e.relative() + "\0" + e.jar().getSize() + "\0" + e.jar().getCrc() + "\n")
                        .getBytes(StandardCharsets.UTF_8));
            }
            return HexFormat.of().formatHex(md.digest()).substring(0, 16);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Removes {@code .partial} directories left by runs that were killed more than an hour ago. */
    private static void removeStale(Path models) {
        Instant cutoff = Instant.now().minus(STALE);
        try (Stream<Path> s = Files.list(models)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                FileTime t = Files.getLastModifiedTime(p);
                if (p.getFileName().toString().contains(".partial-") && t.toInstant().isBefore(cutoff)) {
                    deleteTree(p);
                }
            }
        } catch (IOException | UncheckedIOException e) {
            // Cleaning is a courtesy; a leftover directory does no harm.
        }
    }

    private static void deleteTree(Path p) {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : (Iterable<Path>) s.sorted(Comparator.reverseOrder())::iterator) {
                Files.deleteIfExists(q);
            }
        } catch (IOException | UncheckedIOException e) {
            // Best effort: what remains is at worst a stale copy, never a half-published one.
        }
    }
}
