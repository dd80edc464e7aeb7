package dev.marble.runtime.synth;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A stand-in CLIP tokenizer for synthesized models, in CLIP's file format: the 256 byte symbols
 * (GPT-2's byte-to-unicode alphabet), each again with the end-of-word marker, no merges, and the
 * special tokens at CLIP's ids 49406 and 49407. Every prompt tokenizes (one token per byte), which is
 * all a random-weight model needs; no third-party vocabulary is copied.
 */
final class Tokenizers {
    private static final int VOCAB = 49408;

    private Tokenizers() {
    }

    static void writeSynthetic(Path dir) throws IOException {
        Files.createDirectories(dir);
        Map<String, Integer> vocab = new LinkedHashMap<>();
        List<String> symbols = byteSymbols();
        for (String s : symbols) {
            vocab.put(s, vocab.size());
        }
        for (String s : symbols) {
            vocab.put(s + "</w>", vocab.size());
        }
        vocab.put("<|startoftext|>", VOCAB - 2);
        vocab.put("<|endoftext|>", VOCAB - 1);
        ObjectMapper json = new ObjectMapper();
        json.writeValue(dir.resolve("vocab.json").toFile(), vocab);
        Files.writeString(dir.resolve("merges.txt"), "#version: 0.2\n");
        ObjectNode special = json.createObjectNode();
        special.put("bos_token", "<|startoftext|>");
        special.put("eos_token", "<|endoftext|>");
        special.put("pad_token", "<|endoftext|>");
        special.put("unk_token", "<|endoftext|>");
        json.writeValue(dir.resolve("special_tokens_map.json").toFile(), special);
        ObjectNode config = special.deepCopy();
        config.put("model_max_length", 77);
        config.put("tokenizer_class", "CLIPTokenizer");
        json.writeValue(dir.resolve("tokenizer_config.json").toFile(), config);
    }

    /** GPT-2's reversible byte → printable-character table, in byte order. */
    static List<String> byteSymbols() {
        List<String> out = new ArrayList<>();
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            out.add(Character.toString(printable ? b : 256 + extra++));
        }
        return out;
    }
}
