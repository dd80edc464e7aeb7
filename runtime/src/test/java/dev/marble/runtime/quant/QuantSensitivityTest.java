package dev.marble.runtime.quant;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.marble.runtime.clip.ClipTextConfig;
import dev.marble.runtime.clip.ClipTextModel;
import dev.marble.runtime.nn.FakeQuantSource;
import dev.marble.runtime.nn.GoldenCase;
import dev.marble.runtime.unet.UNet2DConditionModel;
import dev.marble.runtime.unet.UNetConfig;
import dev.marble.tensors.Tensor;
import dev.marble.tensors.Workspace;
import dev.marble.tensors.quant.QuantFormat;
import dev.marble.weights.SafetensorsSource;
import dev.marble.weights.TensorSource;
import dev.marble.weights.WeightScope;
import dev.marble.weights.quant.QuantRules;
import java.lang.foreign.Arena;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * What quantization costs at the output of the golden sd15-tiny UNet and text encoder, measured by
 * building the models from weights that were quantized and decoded again ({@link FakeQuantSource}).
 * Errors are max|out − ref| / max|ref| (the golden rule's measure) and rms(out − ref) / rms(ref).
 * The default rules are checked on every build; the per-class tables behind them (one class of tensors
 * quantized at a time) take a minute and run with {@code -Dmarble.quant.sweep=true}.
 */
class QuantSensitivityTest {
    static final Map<String, String> UNET_CLASSES = new LinkedHashMap<>();
    static final Map<String, String> TEXT_CLASSES = new LinkedHashMap<>();

    static {
        UNET_CLASSES.put("resnet conv1/conv2 3x3", "resnets\\.\\d+\\.conv[12]\\.weight$");
        UNET_CLASSES.put("resnet conv_shortcut 1x1", "conv_shortcut\\.weight$");
        UNET_CLASSES.put("resnet time_emb_proj", "time_emb_proj\\.weight$");
        UNET_CLASSES.put("attn1 q/k/v/out", "attn1\\.to_(q|k|v|out\\.0)\\.weight$");
        UNET_CLASSES.put("attn2 q/k/v/out", "attn2\\.to_(q|k|v|out\\.0)\\.weight$");
        UNET_CLASSES.put("feed-forward", "ff\\.net\\.(0\\.proj|2)\\.weight$");
        UNET_CLASSES.put("proj_in/proj_out 1x1", "proj_(in|out)\\.weight$");
        UNET_CLASSES.put("down/upsampler conv", "samplers\\.0\\.conv\\.weight$");
        UNET_CLASSES.put("conv_in", "^conv_in\\.weight$");
        UNET_CLASSES.put("conv_out", "^conv_out\\.weight$");
        UNET_CLASSES.put("time_embedding", "^time_embedding\\..*weight$");
        UNET_CLASSES.put("norms (as [1, C])", "norm[^.]*\\.(weight|bias)$");
        UNET_CLASSES.put("biases (as [1, C])", "^(?!.*norm[^.]*\\.bias$).*\\.bias$");
        TEXT_CLASSES.put("token_embedding", "token_embedding");
        TEXT_CLASSES.put("position_embedding", "position_embedding");
        TEXT_CLASSES.put("self_attn q/k/v/out", "self_attn\\.(q|k|v|out)_proj\\.weight$");
        TEXT_CLASSES.put("mlp fc1/fc2", "mlp\\.fc[12]\\.weight$");
        TEXT_CLASSES.put("layer norms (as [1, C])", "layer_norm.*\\.(weight|bias)$");
        TEXT_CLASSES.put("biases (as [1, C])", "_proj\\.bias$|fc[12]\\.bias$");
    }

    private static final Pattern ONE_BY_ONE = Pattern.compile("(conv_shortcut|proj_in|proj_out)\\.weight$");

    private interface Model {
        /** The output of a model built from {@code weights} on the case's inputs. */
        Tensor run(TensorSource weights, GoldenCase g, Arena arena, Workspace ws);
    }

    private static final Model UNET = (w, g, arena, ws) -> UNet2DConditionModel
            .load(UNetConfig.read(g.modelDir().resolve("unet/config.json")), WeightScope.root(w), arena)
            .forward(ws, g.tensor("sample"), g.tensor("timestep").toFloatArray(), g.tensor("encoder_hidden_states"));

    private static final Model TEXT = (w, g, arena, ws) -> ClipTextModel
            .load(ClipTextConfig.read(g.modelDir().resolve("text_encoder/config.json")), WeightScope.root(w).at("text_model"), arena)
            .encode(ws, g.tensor("input_ids")).lastHiddenState();

    @Test
    void defaultRulesKeepTheGoldenOutputsClose() {
        double[] unet = defaultRuleErrors("unet_sd15-tiny_b1_t999", "unet/diffusion_pytorch_model.safetensors", "unet", "out", UNET);
        double[] text = defaultRuleErrors("text_encoder_sd15-tiny", "text_encoder/model.safetensors", "text_encoder",
                "last_hidden_state", TEXT);
        // measured: UNet rms 2.2e-2 / 2.1e-1 / 2.0e-1, text encoder 1.2e-2 / 1.8e-1 / 1.4e-1 (q8_0 / q4_0 / q4_k)
        assertTrue(unet[0] < 0.03 && unet[1] < 0.25 && unet[2] < 0.25, Arrays.toString(unet));
        assertTrue(text[0] < 0.02 && text[1] < 0.22 && text[2] < 0.17, Arrays.toString(text));
    }

    /** The rms-relative output error with the default rules, per format. */
    private static double[] defaultRuleErrors(String caseId, String file, String component, String output, Model model) {
        double[] rms = new double[QuantFormat.all().size()];
        try (GoldenCase g = GoldenCase.open(caseId); SafetensorsSource src = SafetensorsSource.open(g.modelDir().resolve(file))) {
            for (int i = 0; i < rms.length; i++) {
                QuantFormat f = QuantFormat.all().get(i);
                try (Arena arena = Arena.ofShared(); Workspace ws = new Workspace()) {
                    Tensor out = model.run(new FakeQuantSource(src, defaults(f, component, src), arena), g, arena, ws);
                    double[] e = errors(out, g.tensor(output));
                    System.out.printf("%s, default rules at %s: max-rel %.2e, rms-rel %.2e%n", caseId, f, e[0], e[1]);
                    rms[i] = e[1];
                }
            }
        }
        return rms;
    }

    @Test
    @EnabledIfSystemProperty(named = "marble.quant.sweep", matches = "true")
    void unetErrorPerTensorClass() {
        table("UNet", "unet_sd15-tiny_b1_t999", "unet/diffusion_pytorch_model.safetensors", "unet", "out", UNET, UNET_CLASSES);
    }

    @Test
    @EnabledIfSystemProperty(named = "marble.quant.sweep", matches = "true")
    void textEncoderErrorPerTensorClass() {
        table("text encoder", "text_encoder_sd15-tiny", "text_encoder/model.safetensors", "text_encoder", "last_hidden_state",
                TEXT, TEXT_CLASSES);
    }

    private static void table(String title, String caseId, String file, String component, String output, Model model,
            Map<String, String> classes) {
        try (GoldenCase g = GoldenCase.open(caseId); SafetensorsSource src = SafetensorsSource.open(g.modelDir().resolve(file))) {
            long total = src.keys().stream().mapToLong(k -> src.get(k).numel()).sum();
            System.out.printf("%-34s %8s %7s  %-17s %-17s %-17s%n", title + " (max-rel/rms-rel)", "params", "share",
                    "q8_0", "q4_0", "q4_k");
            Map<String, Function<QuantFormat, Function<String, QuantFormat>>> rows = new LinkedHashMap<>();
            for (Map.Entry<String, String> c : classes.entrySet()) {
                Predicate<String> sel = Pattern.compile(c.getValue()).asPredicate();
                rows.put(c.getKey(), f -> k -> sel.test(k) ? f : null);
            }
            rows.put("DEFAULT RULES", f -> defaults(f, component, src));
            rows.put("defaults, 1x1 projections at TYPE", f -> k -> ONE_BY_ONE.matcher(k).find() ? f
                    : defaults(f, component, src).apply(k));
            rows.put("defaults, 1x1 projections f16", f -> k -> ONE_BY_ONE.matcher(k).find() ? null
                    : defaults(f, component, src).apply(k));
            rows.put("everything quantizable", f -> k -> f);
            for (Map.Entry<String, Function<QuantFormat, Function<String, QuantFormat>>> row : rows.entrySet()) {
                StringBuilder cells = new StringBuilder();
                long params = 0;
                for (QuantFormat f : QuantFormat.all()) {
                    try (Arena arena = Arena.ofShared(); Workspace ws = new Workspace()) {
                        FakeQuantSource fq = new FakeQuantSource(src, row.getValue().apply(f), arena);
                        params = src.keys().stream().filter(fq::affects).mapToLong(k -> src.get(k).numel()).sum();
                        double[] e = params == 0 ? null : errors(model.run(fq, g, arena, ws), g.tensor(output));
                        cells.append(e == null ? String.format("%-17s", "n/a") : String.format("%.2e/%.2e", e[0], e[1]))
                                .append(' ');
                    }
                }
                System.out.printf("%-34s %8d %6.2f%%  %s%n", row.getKey(), params, 100.0 * params / total, cells);
            }
        }
    }

    /** The default rules' format per key of {@code src}, null where they keep the tensor in F16. */
    static Function<String, QuantFormat> defaults(QuantFormat f, String component, TensorSource src) {
        QuantRules rules = QuantRules.defaults(f);
        return k -> rules.decide(component, k, src.get(k).shape()).target() instanceof QuantRules.Target.Quantize q
                ? q.format() : null;
    }

    /** {max|out − ref| / max|ref|, rms(out − ref) / rms(ref)}. */
    static double[] errors(Tensor out, Tensor ref) {
        float[] a = out.toFloatArray();
        float[] r = ref.toFloatArray();
        double max = 0;
        double maxRef = 0;
        double se = 0;
        double sr = 0;
        for (int i = 0; i < a.length; i++) {
            double d = a[i] - (double) r[i];
            max = Math.max(max, Math.abs(d));
            maxRef = Math.max(maxRef, Math.abs(r[i]));
            se += d * d;
            sr += (double) r[i] * r[i];
        }
        return new double[] {max / maxRef, Math.sqrt(se / sr)};
    }
}
