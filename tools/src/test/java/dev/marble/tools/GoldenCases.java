package dev.marble.tools;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.marble.weights.SafetensorsFile;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** The golden manifest and the pass rule: max|out − ref| ≤ rel · max|ref|. */
final class GoldenCases {
    private GoldenCases() {
    }

    static Path dir() {
        String p = System.getProperty("marble.golden");
        if (p == null || !Files.isDirectory(Path.of(p))) {
            throw new IllegalStateException("golden reference folder missing: " + p + " (expected ../shared/golden)");
        }
        return Path.of(p);
    }

    static JsonNode manifest() {
        try {
            return JsonMapper.builder().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS).build()
                    .readTree(dir().resolve("manifest.json").toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static List<JsonNode> cases(String component) {
        List<JsonNode> out = new ArrayList<>();
        for (JsonNode c : manifest().path("cases")) {
            if (c.path("component").asText().equals(component)) {
                out.add(c);
            }
        }
        assertTrue(!out.isEmpty(), "no golden cases for " + component);
        return out;
    }

    /**
     * The {@code marble generate} options that reproduce pipeline case {@code c} (prompts, steps,
     * guidance, sampler, seed, and its initial latents, init image or size), without the model and outputs.
     */
    static List<String> generateArgs(JsonNode c) {
        JsonNode kw = c.path("params").path("call_kwargs");
        Path caseFile = dir().resolve(c.path("file").asText());
        List<String> args = new ArrayList<>(List.of(
                "--prompt", kw.path("prompt").asText(), "--negative-prompt", kw.path("negative_prompt").asText(),
                "--steps", kw.path("num_inference_steps").asText(), "--cfg-scale", kw.path("guidance_scale").asText(),
                "--sampler", c.path("params").path("scheduler_id").asText("pndm"),
                "--seed", seed(kw.path("generator").asText())));
        if (c.path("inputs").has("latents")) {
            args.addAll(List.of("--init-latents", caseFile.toString()));
        }
        if (c.path("inputs").has("init_image")) {
            args.addAll(List.of("--init-image", caseFile.toString(), "--strength", kw.path("strength").asText()));
        } else {
            args.addAll(List.of("--width", kw.path("width").asText(), "--height", kw.path("height").asText()));
        }
        return args;
    }

    private static String seed(String generator) {
        Matcher m = Pattern.compile("manual_seed\\((\\d+)\\)").matcher(generator);
        if (!m.find()) {
            throw new IllegalStateException("no seed in " + generator);
        }
        return m.group(1);
    }

    /** Compares tensor {@code name} of {@code actual} with the case file under the case's tolerance; returns err / atol. */
    static double check(JsonNode c, String name, Path actual) {
        double rel = c.path("tolerance").path(name).path("rel").asDouble();
        assertTrue(rel > 0, c.path("id").asText() + ": no tolerance for " + name);
        try (SafetensorsFile ref = SafetensorsFile.open(dir().resolve(c.path("file").asText()));
                SafetensorsFile out = SafetensorsFile.open(actual)) {
            float[] r = ref.tensor(name).toFloatArray();
            float[] o = out.tensor(name).toFloatArray();
            assertTrue(r.length == o.length, name + ": " + o.length + " values, expected " + r.length);
            double scale = 0;
            double err = 0;
            for (int i = 0; i < r.length; i++) {
                scale = Math.max(scale, Math.abs(r[i]));
                err = Math.max(err, Math.abs(r[i] - o[i]));
            }
            double atol = rel * scale;
            assertTrue(err <= atol, c.path("id").asText() + " " + name + ": max error " + err + " > atol " + atol);
            return err / atol;
        }
    }
}
