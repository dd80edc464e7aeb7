package dev.marble.weights.quant;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.quant.Q8_0;
import dev.marble.tensors.quant.QuantFormat;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Which tensors of a model get quantized: an ordered list of rules, each a component (or any), a
 * regular expression searched in the tensor's name within its component, and a target; the first
 * rule that matches decides. Names are seen without the component prefix: diffusers names
 * ({@code down_blocks.0.resnets.0.conv1.weight}) in a folder, LDM names without
 * {@code model.diffusion_model.} ({@code input_blocks.1.0.in_layers.2.weight}) in a single file, so
 * the defaults spell both.
 *
 * <p>Whatever the rules say, only a Linear [N, K] or conv [OC, IC, KH, KW] weight with K (IC) a
 * multiple of {@value QuantFormat#BLOCK} can be quantized: norms, biases (1-D) and conv_in (4
 * channels) always stay in F16.
 *
 * <p>Defaults, chosen by measurement (runtime's QuantSensitivityTest: the golden sd15-tiny UNet output
 * with one class of tensors quantized at a time; the tensor classes hold about the same shares of the
 * parameters as in SD 1.5). Per byte saved, the most sensitive classes were conv_out (≈1000× the
 * 3×3 resnet convs), norms, the 1×1 projections (conv_shortcut ≈100×, proj_in/proj_out ≈40×) and the
 * time embedding; the token embedding was the least sensitive but is a lookup table, not a GEMM.
 * <pre>
 * component      pattern                                                    target
 * vae            .*                                                         f16
 * unet           ^(conv_in|input_blocks\.0\.0)\.                            f16 (4 input channels)
 * unet           ^(conv_out|out\.2)\.                                       f16
 * unet           ^(time_embedding|time_embed)\.                             f16
 * any            embedding                                                  f16 (token / position)
 * unet           (conv_shortcut|skip_connection|proj_in|proj_out)\.weight$  q8_0 for a 4-bit TYPE, else TYPE
 * unet           .*                                                         TYPE
 * text_encoder   .*                                                         TYPE
 * any            .*                                                         f16
 * </pre>
 * Keeping the 1×1 projections at q8_0 costs 5 % more bytes on SD 1.5 at 4 bits and cut the tiny
 * UNet's output error from 0.34 to 0.20 (q4_k, rms relative).
 */
public final class QuantRules {
    /** What becomes of a tensor. */
    public sealed interface Target {
        /** Stored in a block format. */
        record Quantize(QuantFormat format) implements Target {
            @Override
            public String toString() {
                return format.id();
            }
        }

        /** Stored as F16 (F32 tensors are narrowed unless a value would overflow; F16 and BF16 stay). */
        record Half() implements Target {
            @Override
            public String toString() {
                return "f16";
            }
        }

        /** Stored exactly as in the input. */
        record Keep() implements Target {
            @Override
            public String toString() {
                return "keep";
            }
        }

        /** q8_0, q4_0, q4_k, f16 or keep. */
        static Target parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "f16", "fp16" -> new Half();
                case "keep" -> new Keep();
                default -> new Quantize(QuantFormat.parse(s));
            };
        }
    }

    /** One rule: {@code component} null matches any component. */
    public record Rule(String component, Pattern pattern, Target target) {
        boolean matches(String comp, String name) {
            return (component == null || component.equals(comp)) && pattern.matcher(name).find();
        }

        @Override
        public String toString() {
            return (component == null ? "*" : component) + ":" + pattern.pattern() + "=" + target;
        }
    }

    /** The outcome for one tensor, with the rule that decided it (null when the shape did). */
    public record Decision(Target target, Rule rule, String reason) {
    }

    /** A row length for comparing formats' sizes: a whole q4_k super-block. */
    private static final int BLOCK_ROW = 256;

    /** Component names as the diffusers folders name them. */
    public static final List<String> COMPONENTS = List.of("unet", "text_encoder", "vae");

    private final List<Rule> rules;

    private QuantRules(List<Rule> rules) {
        this.rules = List.copyOf(rules);
    }

    /** The default rules with the UNet's and text encoder's weights in {@code type}. */
    public static QuantRules defaults(QuantFormat type) {
        Target q = new Target.Quantize(type);
        Target wide = new Target.Quantize(type.bitsPerWeight(BLOCK_ROW) < 8 ? Q8_0.INSTANCE : type);
        Target f16 = new Target.Half();
        return new QuantRules(List.of(
                rule("vae", ".*", f16),
                rule("unet", "^(conv_in|input_blocks\\.0\\.0)\\.", f16),
                rule("unet", "^(conv_out|out\\.2)\\.", f16),
                rule("unet", "^(time_embedding|time_embed)\\.", f16),
                rule(null, "embedding", f16),
                rule("unet", "(conv_shortcut|skip_connection|proj_in|proj_out)\\.weight$", wide),
                rule("unet", ".*", q),
                rule("text_encoder", ".*", q),
                rule(null, ".*", f16)));
    }

    private static Rule rule(String component, String regex, Target t) {
        return new Rule(component, Pattern.compile(regex), t);
    }

    /**
     * These rules after {@code specs}, each {@code [COMPONENT:]REGEX=TARGET} (COMPONENT one of
     * {@link #COMPONENTS}; TARGET q8_0, q4_0, q4_k, f16 or keep), which take precedence in order.
     */
    public QuantRules withOverrides(List<String> specs) {
        List<Rule> out = new ArrayList<>();
        for (String spec : specs) {
            out.add(parseRule(spec));
        }
        out.addAll(rules);
        return new QuantRules(out);
    }

    static Rule parseRule(String spec) {
        int eq = spec.lastIndexOf('=');
        if (eq <= 0 || eq == spec.length() - 1) {
            throw new MarbleException("--rule '" + spec + "': expected [COMPONENT:]REGEX=TYPE");
        }
        String lhs = spec.substring(0, eq);
        String component = null;
        int colon = lhs.indexOf(':');
        if (colon > 0 && COMPONENTS.contains(lhs.substring(0, colon))) {
            component = lhs.substring(0, colon);
            lhs = lhs.substring(colon + 1);
        }
        Target t;
        try {
            t = Target.parse(spec.substring(eq + 1));
        } catch (MarbleException e) {
            throw new MarbleException("--rule '" + spec + "': " + e.getMessage() + ", f16 or keep");
        }
        try {
            return new Rule(component, Pattern.compile(lhs), t);
        } catch (PatternSyntaxException e) {
            throw new MarbleException("--rule '" + spec + "': bad regular expression: " + e.getDescription());
        }
    }

    /** The rules in order. */
    public List<Rule> rules() {
        return rules;
    }

    /** What becomes of tensor {@code name} (within {@code component}) of shape {@code shape}. */
    public Decision decide(String component, String name, long[] shape) {
        for (Rule r : rules) {
            if (r.matches(component, name)) {
                if (r.target() instanceof Target.Quantize && !QuantFormat.quantizable(shape)) {
                    return new Decision(new Target.Half(), r, "not quantizable");
                }
                return new Decision(r.target(), r, "");
            }
        }
        return new Decision(new Target.Keep(), null, "no rule");
    }
}
