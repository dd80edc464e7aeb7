package dev.marble.tools;

import dev.marble.runtime.Component;
import dev.marble.runtime.Marble;
import dev.marble.runtime.clip.ClipTextModel;
import dev.marble.runtime.vae.AutoencoderKL;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.weights.SafetensorsWriter;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code marble run STAGE}: one model stage alone, safetensors in and out, with the golden cases'
 * tensor names, so that any stage can be compared with a reference. Tensors are float32 NCHW.
 */
@Command(name = "run", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Run one stage alone, safetensors in and out (float32, NCHW):",
            "  text-encoder  input_ids [B,77] (or --prompt) -> last_hidden_state, penultimate_hidden_state, pooler_output",
            "  unet          sample [B,C,h,w], timestep [] or [B], encoder_hidden_states [B,77,D] -> out",
            "  vae-decode    z [B,C,h,w] (latents / scaling factor) -> sample [B,3,H,W]",
            "  vae-encode    image [B,3,H,W] in [-1,1] -> mean, std"})
final class RunCommand implements Runnable {
    @Parameters(index = "0", paramLabel = "STAGE", description = "text-encoder, unet, vae-decode or vae-encode.")
    String stage;

    @Mixin
    ModelOptions model;

    @Mixin
    QuantOption quant;

    @Option(names = "--in", paramLabel = "FILE", description = "Input safetensors file.")
    Path in;

    @Option(names = {"-p", "--prompt"}, description = "text-encoder only: prompts instead of --in (repeatable).")
    List<String> prompts;

    @Option(names = "--out", paramLabel = "FILE", required = true, description = "Output safetensors file.")
    Path out;

    @Mixin
    Options options;

    @Override
    public void run() {
        options.apply();
        Map<String, Tensor> result = new LinkedHashMap<>();
        try (Arena arena = Arena.ofShared(); Workspace ws = new Workspace()) {
            switch (stage) {
                case "text-encoder" -> textEncoder(arena, ws, result);
                case "unet" -> unet(arena, ws, result);
                case "vae-decode" -> vaeDecode(arena, ws, result);
                case "vae-encode" -> vaeEncode(arena, ws, result);
                default -> throw new MarbleException("run: unknown stage '" + stage
                        + "'; use text-encoder, unet, vae-decode or vae-encode");
            }
            SafetensorsWriter.write(out, result, Map.of());
        }
    }

    private Path input() {
        if (in == null) {
            throw new MarbleException("run " + stage + ": --in FILE is required");
        }
        return in;
    }

    private void textEncoder(Arena arena, Workspace ws, Map<String, Tensor> result) {
        boolean fromPrompts = prompts != null && !prompts.isEmpty();
        if (fromPrompts == (in != null)) {
            throw new MarbleException("run text-encoder: give either --in FILE or --prompt TEXT");
        }
        EnumSet<Component> parts = fromPrompts ? EnumSet.of(Component.TOKENIZER, Component.TEXT_ENCODER)
                : EnumSet.of(Component.TEXT_ENCODER);
        try (Marble m = model.load(parts, options, quant.format())) {
            int[][] ids;
            if (fromPrompts) {
                ids = new int[prompts.size()][];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = m.tokenizer().encode(prompts.get(i));
                }
            } else {
                ids = TensorFiles.readIds(in, "input_ids");
            }
            ClipTextModel.Output o = m.textEncoder().encode(ws, ids);
            result.put("last_hidden_state", copy(o.lastHiddenState(), arena));
            result.put("penultimate_hidden_state", copy(o.penultimateHiddenState(), arena));
            result.put("pooler_output", copy(o.pooledOutput(), arena));
        }
    }

    private void unet(Arena arena, Workspace ws, Map<String, Tensor> result) {
        Path file = input();
        Tensor sample = TensorFiles.readF32(file, "sample", arena, 4);
        Tensor t = TensorFiles.readF32(file, "timestep", arena, -1);
        Tensor ctx = TensorFiles.readF32(file, "encoder_hidden_states", arena, 3);
        if (t.rank() > 1) {
            throw new MarbleException(file + ": tensor 'timestep' must be [] or [B], got " + t);
        }
        try (Marble m = model.load(EnumSet.of(Component.UNET), options, quant.format())) {
            result.put("out", copy(m.unet().forward(ws, sample, t.toFloatArray(), ctx), arena));
        }
    }

    private void vaeDecode(Arena arena, Workspace ws, Map<String, Tensor> result) {
        Tensor z = TensorFiles.readF32(input(), "z", arena, 4);
        try (Marble m = model.load(EnumSet.of(Component.VAE), options, quant.format())) {
            result.put("sample", copy(m.vae().decode(ws, z), arena));
        }
    }

    private void vaeEncode(Arena arena, Workspace ws, Map<String, Tensor> result) {
        Tensor image = TensorFiles.readF32(input(), "image", arena, 4);
        try (Marble m = model.load(EnumSet.of(Component.VAE), options, quant.format())) {
            AutoencoderKL.LatentDist d = m.vae().encode(ws, image);
            result.put("mean", copy(d.mean(), arena));
            result.put("std", copy(d.std(), arena));
        }
    }

    /** Model outputs live in the model's scratch memory; the file is written after the model closes. */
    private static Tensor copy(Tensor t, Arena arena) {
        Tensor c = Tensor.allocate(arena, t.dtype(), t.shape());
        t.copyTo(c);
        return c;
    }
}
