package dev.marble.tools;

import dev.marble.runtime.Component;
import dev.marble.runtime.Marble;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.stream.Collectors;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code marble tokenize}: the 77 token ids of a prompt, as a JSON array. */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = "Print the model's token ids for a prompt (BOS, tokens, EOS, padding) as a JSON array.")
final class TokenizeCommand implements Runnable {
    @Mixin
    ModelOptions model;

    @Option(names = {"-p", "--prompt"}, required = true, description = "The text.")
    String prompt;

    @Mixin
    Options options;

    @Override
    public void run() {
        options.apply();
        try (Marble m = model.load(EnumSet.of(Component.TOKENIZER), options)) {
            int[] ids = m.tokenizer().encode(prompt);
            System.out.println(Arrays.stream(ids).mapToObj(Integer::toString).collect(Collectors.joining(", ", "[", "]")));
        }
    }
}
