package dev.marble.tools;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.marble.runtime.GenerationListener;
import dev.marble.runtime.GenerationResult;
import dev.marble.runtime.LoadOptions;
import dev.marble.runtime.Marble;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.weights.SafetensorsFile;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * Drift of the quantized formats against F32 (issue 5, "Quality"), on every golden UNet and pipeline
 * case: the golden F32 sd15-tiny model is quantized on load ({@code LoadOptions.quant}, the default
 * rules) and compared with the same model loaded in F32, case by case. UNet cases: max|q − f| / max|f|
 * and rms(q − f) / rms(f) of the UNet output. Pipeline cases (same prompts, seeds and samplers as the
 * golden runs): the rms-relative error of the final latents and the PSNR of the final image in [0, 1],
 * 10 · log10(1 / mean((q − f)²)). One table is printed.
 *
 * <p>The bounds were fixed before this test first ran, from the formats' step sizes, not from its
 * output. A block with largest magnitude a has step a/127 in q8_0 and about a/8 in q4_0 and q4_k
 * (q4_k: (max − min)/15 with least-squares refinement), so the rms weight error is step/√12: about
 * 0.5 % of the weights' rms for q8_0 and 16 times that (~8 %) for the 4-bit formats, for Gaussian-like
 * blocks (a ≈ 2.1 σ). Independent weight errors add up through the network roughly as √depth; the
 * tiny UNet's path has some 25 quantized layers, so the output error is expected near 5 × the weight
 * error: ~2.5 % for q8_0, ~40 % for 4 bits (less, since the 4-bit rules keep the 1×1 projections at
 * q8_0). The bounds allow twice that: q8_0 ≤ 0.05 and 4-bit ≤ 0.5 (rms-relative and max-relative,
 * whose extremes scale alike), and, the point of the 8-bit format, q8_0's error at least 4 times smaller
 * than each 4-bit format's on every case (16 expected). The golden README measures full pipelines
 * moving the final latents 2 to 5 times as far as a perturbation of the UNet outputs, so the latents'
 * rms-relative error is bounded by 5 × 0.05 = 0.25 for q8_0 (no absolute bound at 4 bits, where errors
 * of that size saturate) and must stay at least 2 times below the 4-bit formats'. The decoder output
 * lies in about [−1, 1] (rms ≤ 0.5), and the image is decode / 2 + 0.5, so a latent error of 25 % is at
 * most an image error of rms 0.063: PSNR ≥ 24 dB for q8_0, and ≥ 12 dB (rms 0.25, a latent error of
 * 100 %) for 4 bits, with q8_0 at least 6 dB above each 4-bit format. A wrong scale, a transposed plane
 * or a weight read in the wrong format breaks these by a wide margin.
 */
class QuantDriftTest {
    private static final double Q8_UNET = 0.05;
    private static final double Q4_UNET = 0.5;
    private static final double UNET_RATIO = 4;
    private static final double Q8_LATENTS = 0.25;
    private static final double LATENTS_RATIO = 2;
    private static final double Q8_PSNR = 24;
    private static final double Q4_PSNR = 12;
    private static final double PSNR_GAP = 6;

    /** Outputs of one model on every case: UNet outputs, then final latents and images of the pipelines. */
    private record Outputs(List<float[]> unet, List<float[]> latents, List<float[]> images) {
    }

    @Test
    void quantizedOnLoadStaysCloseToF32OnEveryGoldenCase() {
        Path model = GoldenCases.dir().resolve("models/sd15-tiny");
        List<JsonNode> unetCases = GoldenCases.cases("unet");
        List<JsonNode> pipelines = GoldenCases.cases("pipeline");
        List<QuantFormat> formats = QuantFormat.all();
        // Two models at a time: the tiny model's layers are too small to keep both cores busy on their own.
        List<Future<Outputs>> runs = new ArrayList<>();
        try (ExecutorService pool = Executors.newFixedThreadPool(2)) {
            runs.add(pool.submit(() -> run(model, null, unetCases, pipelines)));
            for (QuantFormat f : formats) {
                runs.add(pool.submit(() -> run(model, f, unetCases, pipelines)));
            }
        }
        Outputs f32 = result(runs.get(0));
        List<Outputs> quant = new ArrayList<>();
        for (int i = 1; i < runs.size(); i++) {
            quant.add(result(runs.get(i)));
        }

        List<String> failures = new ArrayList<>();
        StringBuilder table = new StringBuilder("\nDrift against F32, quantized on load (default rules), golden sd15-tiny\n");
        table.append(String.format(Locale.ROOT, "%-36s", "UNet case: max-rel / rms-rel"));
        formats.forEach(f -> table.append(String.format(Locale.ROOT, " %-19s", f)));
        table.append('\n');
        for (int c = 0; c < unetCases.size(); c++) {
            String id = unetCases.get(c).path("id").asText();
            double[][] e = new double[formats.size()][];
            table.append(String.format(Locale.ROOT, "%-36s", id));
            for (int i = 0; i < formats.size(); i++) {
                e[i] = errors(quant.get(i).unet().get(c), f32.unet().get(c));
                table.append(String.format(Locale.ROOT, " %.2e / %.2e  ", e[i][0], e[i][1]));
            }
            table.append('\n');
            for (int i = 0; i < formats.size(); i++) {
                double bound = formats.get(i).id().equals("q8_0") ? Q8_UNET : Q4_UNET;
                check(failures, e[i][0] <= bound, id, formats.get(i) + " max-rel %.3g > %.3g", e[i][0], bound);
                check(failures, e[i][1] <= bound, id, formats.get(i) + " rms-rel %.3g > %.3g", e[i][1], bound);
                if (i > 0) {
                    check(failures, e[0][1] * UNET_RATIO <= e[i][1], id, "q8_0 rms-rel %.3g is not %.0fx below "
                            + formats.get(i) + "'s %.3g", e[0][1], UNET_RATIO, e[i][1]);
                }
            }
        }
        table.append(String.format(Locale.ROOT, "%-36s", "pipeline: latents rms-rel / PSNR"));
        formats.forEach(f -> table.append(String.format(Locale.ROOT, " %-19s", f)));
        table.append('\n');
        for (int c = 0; c < pipelines.size(); c++) {
            String id = pipelines.get(c).path("id").asText();
            double[] lat = new double[formats.size()];
            double[] psnr = new double[formats.size()];
            table.append(String.format(Locale.ROOT, "%-36s", id));
            for (int i = 0; i < formats.size(); i++) {
                lat[i] = errors(quant.get(i).latents().get(c), f32.latents().get(c))[1];
                psnr[i] = psnr(quant.get(i).images().get(c), f32.images().get(c));
                table.append(String.format(Locale.ROOT, " %.2e / %5.1f dB ", lat[i], psnr[i]));
            }
            table.append('\n');
            check(failures, lat[0] <= Q8_LATENTS, id, "q8_0 latents rms-rel %.3g > %.3g", lat[0], Q8_LATENTS);
            check(failures, psnr[0] >= Q8_PSNR, id, "q8_0 PSNR %.1f dB < %.0f dB", psnr[0], Q8_PSNR);
            for (int i = 1; i < formats.size(); i++) {
                check(failures, psnr[i] >= Q4_PSNR, id, formats.get(i) + " PSNR %.1f dB < %.0f dB", psnr[i], Q4_PSNR);
                check(failures, lat[0] * LATENTS_RATIO <= lat[i], id, "q8_0 latents rms-rel %.3g is not %.0fx below "
                        + formats.get(i) + "'s %.3g", lat[0], LATENTS_RATIO, lat[i]);
                check(failures, psnr[0] >= psnr[i] + PSNR_GAP, id, "q8_0 PSNR %.1f dB is not %.0f dB above "
                        + formats.get(i) + "'s %.1f dB", psnr[0], PSNR_GAP, psnr[i]);
            }
        }
        System.out.println(table);
        assertTrue(failures.isEmpty(), String.join("\n", failures));
    }

    /** Every case through one model: F32 when {@code quant} is null, else quantized on load. */
    private static Outputs run(Path model, QuantFormat quant, List<JsonNode> unetCases, List<JsonNode> pipelines) {
        Outputs out = new Outputs(new ArrayList<>(), new ArrayList<>(), new ArrayList<>());
        try (Marble m = Marble.load(model, LoadOptions.defaults().withQuant(quant))) {
            for (JsonNode c : unetCases) {
                try (SafetensorsFile f = SafetensorsFile.open(GoldenCases.dir().resolve(c.path("file").asText()));
                        Workspace ws = new Workspace()) {
                    out.unet().add(m.unet().forward(ws, f.tensor("sample"), f.tensor("timestep").toFloatArray(),
                            f.tensor("encoder_hidden_states")).toFloatArray());
                }
            }
            for (JsonNode c : pipelines) {
                List<String> args = new ArrayList<>(List.of("--model", model.toString()));
                args.addAll(GoldenCases.generateArgs(c));
                GenerateCommand cmd = CommandLine.populateCommand(new GenerateCommand(), args.toArray(String[]::new));
                GenerationResult.Image img = m.generate(cmd.request(), GenerationListener.NONE).images().get(0);
                out.latents().add(img.latents());
                out.images().add(img.pixels());
            }
        }
        return out;
    }

    private static Outputs result(Future<Outputs> run) {
        try {
            return run.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            if (e.getCause() instanceof Error r) {
                throw r;
            }
            throw new IllegalStateException(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    private static void check(List<String> failures, boolean ok, String id, String format, Object... args) {
        if (!ok) {
            failures.add(id + ": " + String.format(Locale.ROOT, format, args));
        }
    }

    /** {max|q − f| / max|f|, rms(q − f) / rms(f)}. */
    private static double[] errors(float[] q, float[] f) {
        assertTrue(q.length == f.length, q.length + " vs " + f.length + " values");
        double maxErr = 0;
        double maxRef = 0;
        double se = 0;
        double sr = 0;
        for (int i = 0; i < q.length; i++) {
            double d = (double) q[i] - f[i];
            maxErr = Math.max(maxErr, Math.abs(d));
            maxRef = Math.max(maxRef, Math.abs(f[i]));
            se += d * d;
            sr += (double) f[i] * f[i];
        }
        return new double[] {maxErr / maxRef, Math.sqrt(se / sr)};
    }

    /** Peak signal-to-noise ratio of an image in [0, 1] against the reference, in dB. */
    private static double psnr(float[] q, float[] f) {
        double se = 0;
        for (int i = 0; i < q.length; i++) {
            double d = (double) q[i] - f[i];
            se += d * d;
        }
        return 10 * Math.log10(q.length / se);
    }
}
