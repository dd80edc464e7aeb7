package dev.marble.runtime.judge;

import dev.marble.runtime.GenerationListener;
import dev.marble.runtime.GenerationRequest;
import dev.marble.runtime.GenerationResult;
import dev.marble.runtime.Marble;
import dev.marble.runtime.image.Png;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Runs the judge's fixed prompt set (prompts.txt beside this class) through a model with the Java
 * pipeline and grades every image: prompt adherence as colour / shape / position accuracy, and the
 * PSNR between two models' images of the same prompts and seeds (F32 against quantized).
 */
final class JudgeRunner {
    /** Image size the shapes model was trained at. */
    static final int SIZE = 64;
    static final int STEPS = 20;
    /** Guidance scale, 7.5 unless {@code -Dmarble.judge.cfg} says otherwise. */
    static final double CFG = Double.parseDouble(System.getProperty("marble.judge.cfg", "7.5"));
    /** Guidance rescale, 0 unless {@code -Dmarble.judge.rescale} says otherwise. */
    static final double RESCALE = Double.parseDouble(System.getProperty("marble.judge.rescale", "0"));

    /** One line of prompts.txt. */
    record Prompt(long seed, String text) {
    }

    /** One generated image and its verdict. */
    record Outcome(Prompt prompt, GenerationResult.Image image, Judge.Verdict verdict) {
    }

    private JudgeRunner() {
    }

    /** The fixed prompt set, in file order. */
    static List<Prompt> prompts() {
        List<Prompt> out = new ArrayList<>();
        try (InputStream in = JudgeRunner.class.getResourceAsStream("prompts.txt")) {
            if (in == null) {
                throw new IllegalStateException("prompts.txt is not on the test class path");
            }
            BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            for (String line; (line = r.readLine()) != null; ) {
                if (line.isBlank() || line.startsWith("#")) {
                    continue;
                }
                String[] f = line.split("\t", 2);
                out.add(new Prompt(Long.parseLong(f[0]), f[1].trim()));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out;
    }

    /** Generates every prompt at 64×64 (the model's own scheduler, 20 steps, CFG and RESCALE) and judges it. */
    static List<Outcome> run(Marble model, List<Prompt> prompts) {
        List<Outcome> out = new ArrayList<>();
        for (Prompt p : prompts) {
            GenerationRequest req = GenerationRequest.builder().prompt(p.text()).seed(p.seed()).size(SIZE, SIZE)
                    .steps(STEPS).cfgScale(CFG).guidanceRescale(RESCALE).build();
            GenerationResult.Image img = model.generate(req, GenerationListener.NONE).image();
            out.add(new Outcome(p, img, Judge.judge(img.pixels(), img.width(), img.height(), p.text())));
        }
        return out;
    }

    static Judge.Tally tally(List<Outcome> outcomes) {
        Judge.Tally t = new Judge.Tally();
        outcomes.forEach(o -> t.add(o.verdict()));
        return t;
    }

    /** A row per prompt (✓ correct, ✗ wrong, · not named) and the accuracy line. */
    static String table(String title, List<Outcome> outcomes) {
        StringBuilder sb = new StringBuilder(title).append('\n');
        sb.append(" seed  col shp pos siz bg   prompt -> what the judge saw\n");
        for (Outcome o : outcomes) {
            Judge.Verdict v = o.verdict();
            sb.append(String.format(Locale.ROOT, "%5d   %s   %s   %s   %s   %s   %s ->", o.prompt().seed(),
                    mark(v.colour()), mark(v.shape()), mark(v.position()), mark(v.size()), mark(v.background()),
                    o.prompt().text()));
            sb.append(" bg ").append(String.join("/", v.scene().background()));
            for (Scene.Region r : v.scene().regions()) {
                sb.append(String.format(Locale.ROOT, "; %s %s %s at %s", r.size(), r.colour(), r.shape(),
                        Judge.cell(v.scene(), r.geometry()).replaceFirst("^(in|on|at) (the )?", "")));
            }
            sb.append('\n');
        }
        sb.append(tally(outcomes).summary()).append('\n');
        return sb.toString();
    }

    private static String mark(Boolean b) {
        return b == null ? "·" : b ? "✓" : "✗";
    }

    /** PSNR in dB of two RGB images in [0, 1] (infinite when identical). */
    static double psnr(float[] a, float[] b) {
        return psnrOfMse(mse(a, b));
    }

    static double mse(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new IllegalArgumentException("images of " + a.length + " and " + b.length + " values");
        }
        double sum = 0;
        for (int i = 0; i < a.length; i++) {
            double d = a[i] - b[i];
            sum += d * d;
        }
        return sum / a.length;
    }

    static double psnrOfMse(double mse) {
        return 10 * Math.log10(1 / mse);
    }

    /**
     * PSNR of {@code other}'s images against {@code reference}'s, prompt by prompt: the PSNR of the
     * mean squared error over all images, and the worst image's.
     */
    static String psnrSummary(List<Outcome> reference, List<Outcome> other) {
        double sum = 0;
        double worst = Double.POSITIVE_INFINITY;
        for (int i = 0; i < reference.size(); i++) {
            double mse = mse(reference.get(i).image().pixels(), other.get(i).image().pixels());
            sum += mse;
            worst = Math.min(worst, psnrOfMse(mse));
        }
        return String.format(Locale.ROOT, "PSNR %.2f dB over %d images (worst image %.2f dB)",
                psnrOfMse(sum / reference.size()), reference.size(), worst);
    }

    /** Writes every image as NNN.png and all of them side by side as sheet.png (9 per row). */
    static void writeImages(List<Outcome> outcomes, Path dir) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        int cols = 9;
        int rows = (outcomes.size() + cols - 1) / cols;
        byte[] sheet = new byte[cols * SIZE * rows * SIZE * 3];
        for (int i = 0; i < outcomes.size(); i++) {
            GenerationResult.Image img = outcomes.get(i).image();
            byte[] rgb = img.rgb8();
            Png.write(dir.resolve(String.format(Locale.ROOT, "%03d.png", i)), img.width(), img.height(), rgb,
                    Map.of("parameters", img.parameters()));
            int ox = (i % cols) * SIZE;
            int oy = (i / cols) * SIZE;
            for (int y = 0; y < SIZE; y++) {
                System.arraycopy(rgb, y * SIZE * 3, sheet, ((oy + y) * cols * SIZE + ox) * 3, SIZE * 3);
            }
        }
        Png.write(dir.resolve("sheet.png"), cols * SIZE, rows * SIZE, sheet, Map.of());
    }
}
