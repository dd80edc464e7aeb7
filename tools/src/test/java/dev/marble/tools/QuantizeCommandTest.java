package dev.marble.tools;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.tensors.DType;
import dev.marble.tensors.quant.Q4_K;
import dev.marble.tensors.quant.Q8_0;
import dev.marble.weights.SafetensorsFile;
import dev.marble.weights.quant.QuantizedSource;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class QuantizeCommandTest {
    @TempDir
    Path tmp;

    private static CliRun run(String... args) {
        return CliRun.of(args);
    }

    private static Path tiny() {
        return GoldenCases.dir().resolve("models/sd15-tiny");
    }

    @Test
    void quantizesADiffusersFolder() throws Exception {
        Path out = tmp.resolve("tiny-q4k");
        CliRun r = run("quantize", "--model", tiny().toString(), "--type", "q4_k", "--out", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("quantizing ["), "progress bar: " + r.err());
        assertTrue(r.err().contains("unet: 277 quantized, 407 f16, 0 kept"), r.err());
        for (String f : new String[] {"model_index.json", "scheduler/scheduler_config.json", "tokenizer/vocab.json",
            "tokenizer/merges.txt", "unet/config.json", "vae/config.json", "text_encoder/config.json"}) {
            assertEquals(-1, Files.mismatch(tiny().resolve(f), out.resolve(f)), f);
        }
        assertFalse(Files.exists(out.resolve("unet/diffusion_pytorch_model.fp16.safetensors")));
        try (QuantizedSource unet = QuantizedSource.open(out.resolve("unet/diffusion_pytorch_model.safetensors"));
                QuantizedSource text = QuantizedSource.open(out.resolve("text_encoder/model.safetensors"));
                QuantizedSource vae = QuantizedSource.open(out.resolve("vae/diffusion_pytorch_model.safetensors"));
                SafetensorsFile in = SafetensorsFile.open(tiny().resolve("unet/diffusion_pytorch_model.safetensors"))) {
            assertEquals(new TreeSet<>(in.names()), new TreeSet<>(unet.keys()));
            assertEquals(Q4_K.INSTANCE, unet.quantized("down_blocks.0.resnets.0.conv1.weight").format());
            assertEquals(Q8_0.INSTANCE, unet.quantized("down_blocks.1.resnets.0.conv_shortcut.weight").format());
            assertEquals(DType.F16, unet.get("conv_in.weight").dtype());
            assertEquals(DType.F16, unet.get("time_embedding.linear_1.weight").dtype());
            assertEquals(Q4_K.INSTANCE, text.quantized("text_model.encoder.layers.0.mlp.fc1.weight").format());
            assertEquals(DType.F16, text.get("text_model.embeddings.token_embedding.weight").dtype());
            assertEquals(Set.of(), vae.quantizedKeys());
            assertEquals(DType.F16, vae.get("decoder.conv_in.weight").dtype());
        }
        // the kernels read the quantized weights: the UNet runs, and its output moves by what q4_k costs
        // (runtime's QuantSensitivityTest: rms-relative 0.20 with these rules)
        Path o = tmp.resolve("o.safetensors");
        Path golden = GoldenCases.dir().resolve("cases/unet_sd15-tiny_b1_t999.safetensors");
        CliRun unet = run("run", "unet", "--model", out.toString(), "--in", golden.toString(), "--out", o.toString());
        assertEquals(0, unet.code(), unet.err());
        try (SafetensorsFile got = SafetensorsFile.open(o); SafetensorsFile ref = SafetensorsFile.open(golden)) {
            float[] a = got.tensor("out").toFloatArray();
            float[] b = ref.tensor("out").toFloatArray();
            assertEquals(b.length, a.length);
            double se = 0;
            double sr = 0;
            for (int i = 0; i < a.length; i++) {
                se += (a[i] - (double) b[i]) * (a[i] - b[i]);
                sr += (double) b[i] * b[i];
            }
            double rms = Math.sqrt(se / sr);
            assertTrue(rms > 0 && rms < 0.25, "rms-relative error " + rms);
        }
        CliRun again = run("quantize", "--model", out.toString(), "--type", "q8_0", "--out", tmp.resolve("again").toString());
        assertEquals("marble: error: " + out + ": text_encoder is already quantized", again.err().strip());
    }

    @Test
    void quantizesASingleFileUnderItsOwnNames() throws Exception {
        Path in = GoldenCases.dir().resolve("models/sd15-tiny.original.safetensors");
        Path out = tmp.resolve("tiny-q8.safetensors");
        CliRun r = run("quantize", "--model", in.toString(), "--type", "q8_0", "--out", out.toString(),
                "--rule", "text_encoder:.*=keep");
        assertEquals(0, r.code(), r.err());
        assertEquals(-1, Files.mismatch(GoldenCases.dir().resolve("models/sd15-tiny.original.yaml"),
                tmp.resolve("tiny-q8.yaml")));
        try (QuantizedSource q = QuantizedSource.open(out); SafetensorsFile f = SafetensorsFile.open(in)) {
            assertEquals(new TreeSet<>(f.names()), new TreeSet<>(q.keys()));
            assertEquals(Q8_0.INSTANCE, q.quantized("model.diffusion_model.input_blocks.1.0.in_layers.2.weight").format());
            assertEquals(null, q.quantized("model.diffusion_model.input_blocks.0.0.weight"));
            assertEquals(null, q.quantized("model.diffusion_model.out.2.weight"));
            assertEquals(null, q.quantized("first_stage_model.decoder.up.0.block.0.conv1.weight"));
            String te = "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight";
            assertEquals(null, q.quantized(te));
            assertEquals(f.info(te).dtype(), q.get(te).dtype());
        }
        // a quantized model is not quantized again
        CliRun again = run("quantize", "--model", out.toString(), "--type", "q4_0", "--out", tmp.resolve("x.safetensors").toString());
        assertEquals(1, again.code());
        assertEquals("marble: error: " + out + ": already quantized", again.err().strip());
    }

    @Test
    void badArgumentsAreOneLineErrors() {
        String model = tiny().toString();
        CliRun type = run("quantize", "--model", model, "--type", "q2", "--out", tmp.resolve("o").toString());
        assertEquals(1, type.code());
        assertEquals("marble: error: unknown quantization type 'q2' (known: q8_0, q4_0, q4_k)", type.err().strip());
        CliRun file = run("quantize", "--model", model, "--type", "q8_0", "--out", tmp.resolve("o.safetensors").toString());
        assertTrue(file.err().strip().endsWith("a diffusers folder quantizes to a folder, not to " + tmp.resolve("o.safetensors")),
                file.err());
        CliRun dir = run("quantize", "--model", GoldenCases.dir().resolve("models/sd15-tiny.original.safetensors").toString(),
                "--type", "q8_0", "--out", tmp.resolve("o").toString());
        assertTrue(dir.err().strip().endsWith("a single-file checkpoint quantizes to a .safetensors file, got " + tmp.resolve("o")),
                dir.err());
        CliRun same = run("quantize", "--model", model, "--type", "q8_0", "--out", model);
        assertTrue(same.err().contains("is the input model"), same.err());
        CliRun rule = run("quantize", "--model", model, "--type", "q8_0", "--out", tmp.resolve("o").toString(), "--rule", "x");
        assertEquals("marble: error: --rule 'x': expected [COMPONENT:]REGEX=TYPE", rule.err().strip());
        for (CliRun x : new CliRun[] {file, dir, same, rule}) {
            assertEquals(1, x.code());
            assertEquals(1, x.err().strip().lines().count(), x.err());
        }
    }
}
