package dev.marble.tools;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

/** Replays every golden stage and pipeline case through the CLI, as the checks outside the project do. */
class CliGoldenTest {
    @TempDir
    Path tmp;

    private static String model() {
        return GoldenCases.dir().resolve("models/sd15-tiny").toString();
    }

    @TestFactory
    Stream<DynamicTest> stageCommands() {
        List<DynamicTest> tests = new ArrayList<>();
        String[][] stages = {{"unet", "unet", "out"}, {"vae", null, null}, {"text_encoder", "text-encoder", null}};
        for (String[] s : stages) {
            for (JsonNode c : GoldenCases.cases(s[0])) {
                String id = c.path("id").asText();
                String stage = s[1] != null ? s[1] : id.startsWith("vae_decode") ? "vae-decode" : "vae-encode";
                tests.add(DynamicTest.dynamicTest(id, () -> runStage(c, stage, false)));
                if (c.path("weights").asText().equals("fp16")) {
                    // The single-file checkpoint holds the fp16 variant's values: same results.
                    tests.add(DynamicTest.dynamicTest(id + " (single file)", () -> runStage(c, stage, true)));
                }
            }
        }
        return tests.stream();
    }

    private void runStage(JsonNode c, String stage, boolean singleFile) {
        Path out = tmp.resolve(c.path("id").asText() + ".out.safetensors");
        String m = singleFile ? GoldenCases.dir().resolve("models/sd15-tiny.original.safetensors").toString() : model();
        List<String> args = new ArrayList<>(List.of("run", stage, "--model", m, "--in",
                GoldenCases.dir().resolve(c.path("file").asText()).toString(), "--out", out.toString()));
        if (!singleFile && c.path("weights").asText().equals("fp16")) {
            args.add("--variant");
            args.add("fp16");
        }
        assertEquals(0, Main.run(args.toArray(String[]::new)), String.join(" ", args));
        c.path("outputs").fieldNames().forEachRemaining(name -> {
            if (!name.equals("penultimate_final_layer_norm")) {
                GoldenCases.check(c, name, out);
            }
        });
    }

    @TestFactory
    Stream<DynamicTest> generateCommand() {
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode c : GoldenCases.cases("pipeline")) {
            tests.add(DynamicTest.dynamicTest(c.path("id").asText(), () -> runPipeline(c)));
        }
        return tests.stream();
    }

    private void runPipeline(JsonNode c) {
        Path tensors = tmp.resolve(c.path("id").asText() + ".safetensors");
        List<String> args = new ArrayList<>(List.of("generate", "--model", model(), "--quiet",
                "--output", tmp.resolve(c.path("id").asText() + ".png").toString(), "--save-tensors", tensors.toString()));
        args.addAll(GoldenCases.generateArgs(c));
        assertEquals(0, Main.run(args.toArray(String[]::new)), String.join(" ", args));
        GoldenCases.check(c, "final_latents", tensors);
        GoldenCases.check(c, "image", tensors);
    }
}
