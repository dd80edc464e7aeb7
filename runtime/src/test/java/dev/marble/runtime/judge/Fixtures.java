package dev.marble.runtime.judge;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.runtime.image.Images;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The judge's ground truth in test-data/judge: renders of the training data generator with their
 * captions, written once by tools/train/render_judge_fixtures.py.
 */
final class Fixtures {
    /** One render: RGB [height, width, 3] in [0, 1] and the caption it was drawn from. */
    record Render(String file, float[] rgb, int width, int height, String caption) {
    }

    private Fixtures() {
    }

    /** The repository's test-data folder (tests run in the module folder, one level below the root). */
    static Path testData() {
        Path p = Path.of(System.getProperty("basedir", System.getProperty("user.dir"))).resolve("../test-data")
                .normalize();
        if (!Files.isDirectory(p)) {
            throw new IllegalStateException(p + ": test-data folder not found (tests run from a module folder)");
        }
        return p;
    }

    static List<Render> load() {
        return load(testData().resolve("judge"));
    }

    /** A folder of PNGs with their captions.json ([{"file", "caption"}]). */
    static List<Render> load(Path dir) {
        Path index = dir.resolve("captions.json");
        if (!Files.isRegularFile(index)) {
            throw new IllegalStateException(index + ": missing; run tools/train/render_judge_fixtures.py");
        }
        try {
            JsonNode list = new ObjectMapper().readTree(index.toFile());
            List<Render> out = new ArrayList<>();
            for (JsonNode e : list) {
                int[] hw = new int[2];
                float[] rgb = Images.readRgb(dir.resolve(e.get("file").asText()), hw);
                out.add(new Render(e.get("file").asText(), rgb, hw[1], hw[0], e.get("caption").asText()));
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
