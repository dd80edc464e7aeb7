package dev.marble.tools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.weights.SafetensorsFile;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --quant} on the CLI gives exactly the model {@code marble quantize} writes, and a quantized
 * single file loads back with the same weights as the quantized folder.
 */
class QuantOnLoadTest {
    @TempDir
    Path tmp;

    private int outputs;

    private static CliRun run(String... args) {
        return CliRun.of(args);
    }

    private static Path golden(String rel) {
        return GoldenCases.dir().resolve(rel);
    }

    private static final String TINY = "models/sd15-tiny";
    private static final String UNET_CASE = "cases/unet_sd15-tiny_b2_cfg_t761.safetensors";
    private static final String TEXT_CASE = "cases/text_encoder_sd15-tiny.safetensors";

    /** {@code run STAGE --model M --in IN --out (new file)} plus {@code extra}; returns the output file. */
    private Path stage(String stage, Path model, String in, String... extra) {
        Path out = tmp.resolve("out-" + outputs++ + ".safetensors");
        List<String> args = new ArrayList<>(List.of("run", stage, "--model", model.toString(), "--in", golden(in).toString(),
                "--out", out.toString()));
        args.addAll(List.of(extra));
        CliRun r = run(args.toArray(String[]::new));
        assertEquals(0, r.code(), String.join(" ", args) + ": " + r.err());
        return out;
    }

    /** Every tensor of {@code a} and {@code b} bit for bit. */
    private static void assertSameOutputs(Path a, Path b, String what) {
        try (SafetensorsFile x = SafetensorsFile.open(a); SafetensorsFile y = SafetensorsFile.open(b)) {
            assertEquals(x.names(), y.names(), what);
            for (String n : x.names()) {
                assertEquals(-1, x.tensor(n).data().mismatch(y.tensor(n).data()), what + ": " + n + " differs");
            }
        }
    }

    @Test
    void quantOnLoadEqualsTheQuantizedFolder() {
        for (String type : new String[] {"q8_0", "q4_k"}) {
            Path folder = tmp.resolve("tiny-" + type);
            CliRun q = run("quantize", "--model", golden(TINY).toString(), "--type", type, "--out", folder.toString());
            assertEquals(0, q.code(), q.err());
            assertSameOutputs(stage("unet", folder, UNET_CASE), stage("unet", golden(TINY), UNET_CASE, "--quant", type),
                    "unet " + type);
            assertSameOutputs(stage("text-encoder", folder, TEXT_CASE),
                    stage("text-encoder", golden(TINY), TEXT_CASE, "--quant", type.toUpperCase()), "text encoder " + type);
            Path plain = stage("unet", golden(TINY), UNET_CASE);
            try (SafetensorsFile x = SafetensorsFile.open(plain);
                    SafetensorsFile y = SafetensorsFile.open(stage("unet", golden(TINY), UNET_CASE, "--quant", type))) {
                assertTrue(x.tensor("out").data().mismatch(y.tensor("out").data()) >= 0, "--quant changes the output");
            }
        }
    }

    /**
     * The golden single file (F16) quantized to q8_0 as a single file loads back through the single-file
     * path with its quantized weights under diffusers names: its UNet and text encoder give exactly the
     * outputs of the folder's fp16 variant quantized to q8_0 (the same F16 values, the same rules).
     */
    @Test
    void quantizedSingleFileRoundTrip() {
        Path single = tmp.resolve("tiny-q8.safetensors");
        CliRun s = run("quantize", "--model", golden("models/sd15-tiny.original.safetensors").toString(), "--type", "q8_0",
                "--out", single.toString());
        assertEquals(0, s.code(), s.err());
        Path folder = tmp.resolve("tiny-fp16-q8");
        CliRun f = run("quantize", "--model", golden(TINY).toString(), "--variant", "fp16", "--type", "q8_0", "--out",
                folder.toString());
        assertEquals(0, f.code(), f.err());
        assertSameOutputs(stage("unet", single, UNET_CASE), stage("unet", folder, UNET_CASE), "unet");
        assertSameOutputs(stage("text-encoder", single, TEXT_CASE), stage("text-encoder", folder, TEXT_CASE), "text encoder");
        // and a full generation from the quantized single file (its tokenizer from the golden folder)
        Path png = tmp.resolve("single.png");
        CliRun g = run("generate", "--model", single.toString(), "--tokenizer", golden(TINY + "/tokenizer").toString(),
                "--prompt", "a red circle", "--steps", "2", "--seed", "1", "--width", "64", "--height", "64", "--quiet",
                "--output", png.toString());
        assertEquals(0, g.code(), g.err());
    }

    @Test
    void oneLineErrors() {
        String model = golden(TINY).toString();
        String unknown = "marble: error: --quant: unknown quantization type 'q3' (known: q8_0, q4_0, q4_k)";
        CliRun gen = run("generate", "--model", model, "--prompt", "x", "--quant", "q3", "--output", tmp.resolve("x.png").toString());
        assertEquals(1, gen.code());
        assertEquals(unknown, gen.err().strip());
        CliRun stage = run("run", "unet", "--model", model, "--in", golden(UNET_CASE).toString(), "--out",
                tmp.resolve("x.safetensors").toString(), "--quant", "q3");
        assertEquals(1, stage.code());
        assertEquals(unknown, stage.err().strip());

        Path folder = tmp.resolve("tiny-q4");
        assertEquals(0, run("quantize", "--model", model, "--type", "q4_0", "--out", folder.toString()).code());
        CliRun again = run("run", "unet", "--model", folder.toString(), "--in", golden(UNET_CASE).toString(), "--out",
                tmp.resolve("x.safetensors").toString(), "--quant", "q8_0");
        assertEquals(1, again.code());
        String tail = "; load it as it is, quantizing on load needs F32, F16 or BF16 weights";
        assertEquals("marble: error: " + folder.resolve("unet/diffusion_pytorch_model.safetensors")
                + ": already quantized (277 weights in q8_0, q4_0)" + tail, again.err().strip());
        CliRun gen2 = run("generate", "--model", folder.toString(), "--prompt", "x", "--quant", "q4_0", "--output",
                tmp.resolve("x.png").toString());
        assertEquals(1, gen2.code());
        assertEquals("marble: error: " + folder.resolve("text_encoder/model.safetensors") + ": already quantized (18 weights"
                + " in q4_0)" + tail, gen2.err().strip());
    }
}
