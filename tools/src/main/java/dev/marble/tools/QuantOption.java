package dev.marble.tools;

import dev.marble.tensors.MarbleException;
import dev.marble.tensors.quant.QuantFormat;
import picocli.CommandLine.Option;

/** {@code --quant TYPE}: quantize an unquantized model while loading it. */
final class QuantOption {
    @Option(names = "--quant", paramLabel = "TYPE",
            description = "Quantize the model on load, in memory (q8_0, q4_0 or q4_k; the default rules of 'marble quantize').")
    String type;

    /** The format, or null without the option; a one-line error lists the known types. */
    QuantFormat format() {
        if (type == null) {
            return null;
        }
        try {
            return QuantFormat.parse(type);
        } catch (MarbleException e) {
            throw new MarbleException("--quant: " + e.getMessage());
        }
    }
}
