package dev.marble.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.MarbleException;
import java.io.IOException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The bundled-model mechanism on a jar holding most of the golden tiny model (random weights: a
 * stand-in, never committed as the default): extraction to the cache, reuse, concurrent first runs, leftovers
 * of a killed run, a damaged copy, an unwritable cache, plain-directory resources.
 */
class BundledModelTest {
    private static final String ROOT = "dev/marble/runtime/models/testmodel/";
    private static Path golden;
    private static Path jar;
    private static URLClassLoader loader;
    @TempDir
    static Path tmp;

    @BeforeAll
    static void makeJar() throws IOException {
        String g = System.getProperty("marble.golden");
        if (g == null) {
            throw new IllegalStateException("system property marble.golden is not set");
        }
        golden = Path.of(g, "models/sd15-tiny");
        jar = tmp.resolve("model.jar");
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar));
                Stream<Path> files = Files.walk(golden)) {
            out.putNextEntry(new JarEntry("dev/marble/other.txt"));
            out.write("not part of the model".getBytes());
            for (Path f : files.filter(Files::isRegularFile).sorted().toList()) {
                String rel = golden.relativize(f).toString().replace('\\', '/');
                if (bundled(rel)) {
                    out.putNextEntry(new JarEntry(ROOT + rel));
                    Files.copy(f, out);
                }
            }
        }
        loader = new URLClassLoader(new URL[] {jar.toUri().toURL()}, null);
    }

    @AfterAll
    static void close() throws IOException {
        loader.close();
    }

    private static List<String> relativeFiles(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(Files::isRegularFile).map(p -> dir.relativize(p).toString())
                    .filter(BundledModelTest::bundled).sorted().toList();
        }
    }

    /** The configs, the tokenizer and one weights file stand in for a model: the mechanism is about files. */
    private static boolean bundled(String rel) {
        return !rel.endsWith(".safetensors") || rel.equals("vae/diffusion_pytorch_model.safetensors");
    }

    private static void assertSameFiles(Path dir) throws IOException {
        assertEquals(relativeFiles(golden), relativeFiles(dir));
        for (String rel : relativeFiles(golden)) {
            assertEquals(-1L, Files.mismatch(golden.resolve(rel), dir.resolve(rel)), rel);
        }
    }

    @Test
    void extractsOnceAndLoadsAsTheFolderDoes() throws IOException {
        Path cache = tmp.resolve("cache-once");
        Path dir = BundledModel.folder(loader, ROOT, cache);
        assertEquals("shapes", dir.getFileName().toString());
        assertEquals(cache.resolve("models"), dir.getParent().getParent());
        assertSameFiles(dir);
        Path weights = dir.resolve("vae/diffusion_pytorch_model.safetensors");
        FileTime written = Files.getLastModifiedTime(weights);
        Files.setLastModifiedTime(weights, FileTime.from(Instant.parse("2020-01-01T00:00:00Z")));
        assertEquals(dir, BundledModel.folder(loader, ROOT, cache), "second run: same copy");
        assertEquals(Instant.parse("2020-01-01T00:00:00Z"), Files.getLastModifiedTime(weights).toInstant(),
                "second run must not rewrite the copy (was written " + written + ")");
        // The files are the golden folder's byte for byte (above); the loader takes the copy as a model folder.
        try (Marble m = Marble.load(dir, LoadOptions.defaults().withComponents(EnumSet.of(Component.SCHEDULER)))) {
            assertEquals("shapes", m.name());
            assertEquals("PNDMScheduler", m.schedulerConfig().className());
        }
    }

    @Test
    void concurrentFirstRunsShareOneCompleteCopy() throws Exception {
        Path cache = tmp.resolve("cache-race");
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Path>> runs = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                runs.add(pool.submit(() -> BundledModel.folder(loader, ROOT, cache)));
            }
            Path first = runs.get(0).get();
            for (Future<Path> f : runs) {
                assertEquals(first, f.get());
            }
            assertSameFiles(first);
        } finally {
            pool.shutdown();
        }
        try (Stream<Path> s = Files.list(cache.resolve("models"))) {
            assertEquals(1, s.count(), "only the published copy remains");
        }
    }

    @Test
    void killedRunsLeaveNothingThatIsUsedAndOldLeftoversGo() throws IOException {
        Path cache = tmp.resolve("cache-killed");
        Path models = Files.createDirectories(cache.resolve("models"));
        // What a Ctrl-C in the middle of an extraction leaves: a half-written private directory.
        Path old = Files.createDirectories(models.resolve("0123456789abcdef.partial-1/shapes/vae"));
        Files.writeString(old.resolve("diffusion_pytorch_model.safetensors"), "half");
        Files.setLastModifiedTime(old.getParent().getParent(), FileTime.from(Instant.now().minusSeconds(7200)));
        Path recent = Files.createDirectories(models.resolve("fedcba9876543210.partial-2"));
        Path dir = BundledModel.folder(loader, ROOT, cache);
        assertSameFiles(dir);
        assertFalse(Files.exists(old.getParent().getParent()), "a leftover older than an hour is removed");
        assertTrue(Files.exists(recent), "a recent one may belong to a running extraction");
    }

    @Test
    void aDamagedCopyIsReplaced() throws IOException {
        Path cache = tmp.resolve("cache-damaged");
        Path dir = BundledModel.folder(loader, ROOT, cache);
        Files.delete(dir.resolve("tokenizer/merges.txt"));
        Files.writeString(dir.resolve("vae/diffusion_pytorch_model.safetensors"), "truncated");
        assertEquals(dir, BundledModel.folder(loader, ROOT, cache));
        assertSameFiles(dir);
    }

    @Test
    void anUnwritableCacheFallsBackToATemporaryCopy() throws IOException {
        Path notADir = Files.writeString(tmp.resolve("cache-is-a-file"), "x");
        Path dir = BundledModel.folder(loader, ROOT, notADir);
        assertFalse(dir.startsWith(notADir));
        assertTrue(dir.startsWith(Path.of(System.getProperty("java.io.tmpdir"))), dir.toString());
        assertSameFiles(dir);
    }

    @Test
    void directoryResourcesAreUsedInPlace() throws IOException {
        Path classes = tmp.resolve("classes");
        Path root = Files.createDirectories(classes.resolve(ROOT));
        Files.writeString(root.resolve("model_index.json"), "{}");
        try (URLClassLoader dirLoader = new URLClassLoader(new URL[] {classes.toUri().toURL()}, null)) {
            assertTrue(BundledModel.present(dirLoader, ROOT));
            assertEquals(root.toRealPath(), BundledModel.folder(dirLoader, ROOT, tmp.resolve("unused")).toRealPath());
        }
        assertFalse(Files.exists(tmp.resolve("unused")));
    }

    @Test
    void noBundledModelIsAOneLineError() {
        assertTrue(BundledModel.present(loader, ROOT));
        assertFalse(BundledModel.present(loader, "dev/marble/runtime/models/absent/"));
        MarbleException e = assertThrows(MarbleException.class,
                () -> BundledModel.folder(loader, "dev/marble/runtime/models/absent/", tmp.resolve("c")));
        assertFalse(e.getMessage().contains("\n"));
        assertTrue(e.getMessage().contains("no bundled model"), e.getMessage());
    }

    @Test
    void theDefaultCacheFollowsTheProperty() {
        String before = System.getProperty("marble.cache");
        try {
            System.setProperty("marble.cache", tmp.resolve("prop").toString());
            assertEquals(tmp.resolve("prop"), BundledModel.defaultCache());
        } finally {
            if (before == null) {
                System.clearProperty("marble.cache");
            } else {
                System.setProperty("marble.cache", before);
            }
        }
    }
}
