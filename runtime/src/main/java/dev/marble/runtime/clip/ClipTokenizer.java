package dev.marble.runtime.clip;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.tensors.MarbleException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The CLIP tokenizer of Stable Diffusion text encoders: transformers' slow {@code CLIPTokenizer}
 * without ftfy, called as {@code tokenizer(prompt, padding="max_length", max_length=N,
 * truncation=True)}.
 *
 * <p>Per prompt, in the reference's order:
 * <ol>
 *   <li>added / special tokens written literally in the prompt ({@code <|startoftext|>},
 *       {@code <|endoftext|>}, the pad token, ...) are split out and map straight to their ids;
 *       with pad token "!" (SD-2.x) every literal "!" becomes the pad id;</li>
 *   <li>each remaining piece goes through {@link BasicTokenizer} (clean-up, CJK spacing, NFC,
 *       whitespace split, Python lower-casing);</li>
 *   <li>each word is cut by CLIP's regex
 *       {@code <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+}
 *       (IGNORECASE), hand-written in {@link #splitWord};</li>
 *   <li>each regex piece is byte-level BPE'd ({@link BytePairEncoder}) and its symbols looked up
 *       (added tokens first, then vocab.json, else the unk token);</li>
 *   <li>BOS + at most maxLength - 2 tokens + EOS, right-padded with the pad id.</li>
 * </ol>
 *
 * <p>Immutable and thread-safe after {@link #load}; the symbols of each word are cached in a
 * bounded concurrent map, so a warm prompt costs a few microseconds.
 */
public final class ClipTokenizer {
    /** One encoded prompt. */
    public record Encoding(
            int[] inputIds,        // [maxLength]: BOS, tokens, EOS, pad...
            int length,            // ids before padding, BOS and EOS included
            int untruncatedLength  // what length would be without truncation
    ) {
        /** 1 for the {@link #length} real ids, 0 for padding (transformers' attention_mask). */
        public int[] attentionMask() {
            int[] mask = new int[inputIds.length];
            Arrays.fill(mask, 0, length, 1);
            return mask;
        }

        public boolean truncated() {
            return untruncatedLength > length;
        }
    }

    static final String START_OF_TEXT = "<|startoftext|>";
    static final String END_OF_TEXT = "<|endoftext|>";

    /**
     * The reference reads merges.txt lines [1 : 49152 - 256 - 2 + 1]: the first line (the
     * "#version" header) is skipped whatever it holds, and at most this many merges are used.
     */
    static final int MAX_MERGES = 49152 - 256 - 2;

    /** Used when tokenizer_config.json has no usable model_max_length: CLIP's 77 positions. */
    static final int DEFAULT_MAX_LENGTH = 77;

    /** model_max_length above this is transformers' "unset" sentinel (int(1e30)), not a length. */
    private static final int MAX_SANE_LENGTH = 1 << 20;

    /** Word cache bound: distinct words kept before the cache is dropped and refilled. */
    private static final int CACHE_LIMIT = 1 << 16;

    /** Longer words are not cached, so a pathological prompt cannot fill the heap. */
    private static final int MAX_CACHED_WORD = 64;

    private static final ObjectMapper JSON = new ObjectMapper();
    /** For vocab.json: 49 408 distinct keys read once, so neither canonicalised nor interned. */
    private static final JsonFactory VOCAB_JSON = JsonFactory.builder()
            .disable(JsonFactory.Feature.CANONICALIZE_FIELD_NAMES)
            .disable(JsonFactory.Feature.INTERN_FIELD_NAMES)
            .build();

    private final BytePairEncoder bpe;
    private final int[] idOfSymbol;          // [symbolCount]
    private final String[] splitTokens;      // added tokens split out of the raw text, longest first
    private final String splitFirstChars;    // first character of each split token
    private final int[] splitSymbols;        // [splitTokens.length]
    private final int startOfTextSymbol;
    private final int endOfTextSymbol;
    private final int bosId;
    private final int eosId;
    private final int padId;
    private final int maxLength;
    private final int vocabSize;
    /** Lower-cased word -> its symbols (regex split + BPE), the reference's BPE cache one level up. */
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    private ClipTokenizer(BytePairEncoder bpe, int[] idOfSymbol, String[] splitTokens, int bosId, int eosId,
            int padId, int maxLength, int vocabSize) {
        this.bpe = bpe;
        this.idOfSymbol = idOfSymbol;
        this.splitTokens = splitTokens;
        this.splitSymbols = new int[splitTokens.length];
        StringBuilder firstChars = new StringBuilder();
        for (int i = 0; i < splitTokens.length; i++) {
            splitSymbols[i] = bpe.symbolOf(splitTokens[i]);
            firstChars.append(splitTokens[i].charAt(0));
        }
        this.splitFirstChars = firstChars.toString();
        this.startOfTextSymbol = bpe.symbolOf(START_OF_TEXT);
        this.endOfTextSymbol = bpe.symbolOf(END_OF_TEXT);
        this.bosId = bosId;
        this.eosId = eosId;
        this.padId = padId;
        this.maxLength = maxLength;
        this.vocabSize = vocabSize;
    }

    // ---------------------------------------------------------------- loading

    /**
     * Reads a tokenizer folder: vocab.json and merges.txt (required), tokenizer_config.json and
     * special_tokens_map.json (optional; special_tokens_map.json wins where both name a token, as
     * in transformers' from_pretrained; missing tokens take CLIPTokenizer's defaults), and
     * added_tokens.json if present.
     */
    public static ClipTokenizer load(Path dir) {
        Path vocabFile = dir.resolve("vocab.json");
        Path mergesFile = dir.resolve("merges.txt");
        Path configFile = dir.resolve("tokenizer_config.json");
        Path specialFile = dir.resolve("special_tokens_map.json");
        Path addedFile = dir.resolve("added_tokens.json");

        Map<String, Integer> vocab = readVocab(vocabFile);
        List<String[]> merges = readMerges(mergesFile);
        JsonNode config = Files.exists(configFile) ? readJson(configFile) : JSON.createObjectNode();
        JsonNode special = Files.exists(specialFile) ? readJson(specialFile) : JSON.createObjectNode();

        // Added tokens: split out of the raw text and looked up before the vocabulary.
        Map<String, Integer> added = new LinkedHashMap<>();
        JsonNode decoder = config.get("added_tokens_decoder");
        if (decoder != null && !decoder.isNull()) {
            if (!decoder.isObject()) {
                throw fail(configFile, "added_tokens_decoder is not an object");
            }
            for (Map.Entry<String, JsonNode> e : decoder.properties()) {
                int id = parseId(configFile, "added_tokens_decoder key", e.getKey());
                added.put(tokenContent(configFile, "added_tokens_decoder." + e.getKey(), e.getValue()), id);
            }
        }
        if (Files.exists(addedFile)) {
            JsonNode extra = readJson(addedFile);
            if (!extra.isObject()) {
                throw fail(addedFile, "is not an object of token -> id");
            }
            for (Map.Entry<String, JsonNode> e : extra.properties()) {
                if (!e.getValue().isIntegralNumber() || !e.getValue().canConvertToInt() || e.getValue().asInt() < 0) {
                    throw fail(addedFile, "id of \"" + e.getKey() + "\" is not a non-negative integer");
                }
                added.put(e.getKey(), e.getValue().asInt());
            }
        }

        String bos = specialToken(specialFile, special, configFile, config, "bos_token", START_OF_TEXT);
        String eos = specialToken(specialFile, special, configFile, config, "eos_token", END_OF_TEXT);
        String pad = specialToken(specialFile, special, configFile, config, "pad_token", END_OF_TEXT);
        String unk = specialToken(specialFile, special, configFile, config, "unk_token", END_OF_TEXT);
        int bosId = resolveId(dir, vocab, added, "bos_token", bos);
        int eosId = resolveId(dir, vocab, added, "eos_token", eos);
        int padId = resolveId(dir, vocab, added, "pad_token", pad);
        int unkId = resolveId(dir, vocab, added, "unk_token", unk);
        // The special tokens are added tokens too (they join the split trie).
        added.putIfAbsent(bos, bosId);
        added.putIfAbsent(eos, eosId);
        added.putIfAbsent(pad, padId);
        added.putIfAbsent(unk, unkId);
        added.remove("");

        int maxLength = maxLength(configFile, config);

        List<String> known = new ArrayList<>(vocab.size() + added.size() + 2);
        known.addAll(vocab.keySet());
        known.addAll(added.keySet());
        known.add(START_OF_TEXT);
        known.add(END_OF_TEXT);
        BytePairEncoder bpe = new BytePairEncoder(merges, known, mergesFile);

        int[] idOfSymbol = new int[bpe.symbolCount()];
        for (int s = 0; s < idOfSymbol.length; s++) {
            String text = bpe.symbolText(s);
            Integer id = added.get(text);
            if (id == null) {
                id = vocab.get(text);
            }
            idOfSymbol[s] = id == null ? unkId : id;
        }
        String[] splitTokens = added.keySet().toArray(String[]::new);
        Arrays.sort(splitTokens, (a, b) -> Integer.compare(b.length(), a.length()));
        return new ClipTokenizer(bpe, idOfSymbol, splitTokens, bosId, eosId, padId, maxLength, vocab.size());
    }

    /** vocab.json: one JSON object of token -> id, streamed (49 408 entries for CLIP). */
    private static Map<String, Integer> readVocab(Path file) {
        Map<String, Integer> vocab = new LinkedHashMap<>(2 * 65536);
        try (InputStream in = Files.newInputStream(file); JsonParser p = VOCAB_JSON.createParser(in)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw fail(file, "is not a JSON object of token -> id");
            }
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String token = p.currentName();
                if (p.nextToken() != JsonToken.VALUE_NUMBER_INT || p.getNumberType() != JsonParser.NumberType.INT
                        || p.getIntValue() < 0) {
                    throw fail(file, "id of \"" + token + "\" is not a non-negative integer");
                }
                vocab.put(token, p.getIntValue());
            }
            if (t != JsonToken.END_OBJECT || p.nextToken() != null) {
                throw fail(file, "is not a single JSON object of token -> id");
            }
        } catch (NoSuchFileException e) {
            throw fail(file, "is missing");
        } catch (IOException e) {
            throw fail(file, "is not valid JSON: " + oneLine(e));
        }
        if (vocab.isEmpty()) {
            throw fail(file, "is empty");
        }
        return vocab;
    }

    /**
     * merges.txt as the reference reads it: strip the text, split on "\n", drop the first line,
     * keep at most {@link #MAX_MERGES} lines, each "left right".
     */
    private static List<String[]> readMerges(Path file) {
        String text = strip(readUtf8(file));
        String[] lines = text.split("\n", -1);
        int count = Math.min(lines.length - 1, MAX_MERGES);
        List<String[]> merges = new ArrayList<>(Math.max(count, 0));
        for (int i = 1; i <= count; i++) {
            String[] parts = splitPair(lines[i]);
            if (parts == null) {
                throw fail(file, "line " + (i + 1) + " is not two space-separated symbols: \""
                        + lines[i].strip() + "\"");
            }
            merges.add(parts);
        }
        return merges;
    }

    /** Python's {@code line.split()} when it yields exactly two fields, else null. */
    private static String[] splitPair(String line) {
        String[] parts = new String[2];
        int n = 0;
        int i = 0;
        int len = line.length();
        while (i < len) {
            while (i < len && isPythonSpace(line.charAt(i))) {
                i++;
            }
            int start = i;
            while (i < len && !isPythonSpace(line.charAt(i))) {
                i++;
            }
            if (i > start) {
                if (n == 2) {
                    return null;
                }
                parts[n++] = line.substring(start, i);
            }
        }
        return n == 2 ? parts : null;
    }

    private static String readUtf8(Path file) {
        try {
            byte[] bytes = Files.readAllBytes(file);
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes)).toString();
        } catch (NoSuchFileException e) {
            throw fail(file, "is missing");
        } catch (CharacterCodingException e) {
            throw fail(file, "is not valid UTF-8");
        } catch (IOException e) {
            throw fail(file, "cannot be read: " + oneLine(e));
        }
    }

    private static JsonNode readJson(Path file) {
        try {
            JsonNode node = JSON.readTree(readUtf8(file));
            if (node == null || !node.isObject()) {
                throw fail(file, "is not a JSON object");
            }
            return node;
        } catch (IOException e) {
            throw fail(file, "is not valid JSON: " + oneLine(e));
        }
    }

    /** A special token's text: special_tokens_map.json, else tokenizer_config.json, else the default. */
    private static String specialToken(Path specialFile, JsonNode special, Path configFile, JsonNode config,
            String key, String fallback) {
        if (special.hasNonNull(key)) {
            return tokenContent(specialFile, key, special.get(key));
        }
        if (config.hasNonNull(key)) {
            return tokenContent(configFile, key, config.get(key));
        }
        if (special.has(key) || config.has(key)) {
            throw fail(special.has(key) ? specialFile : configFile, key + " is null; CLIP needs it");
        }
        return fallback;
    }

    /** A token is written either as a string or as an AddedToken object {"content": ...}. */
    private static String tokenContent(Path file, String key, JsonNode node) {
        if (node.isTextual()) {
            return node.asText();
        }
        if (node.isObject() && node.hasNonNull("content") && node.get("content").isTextual()) {
            return node.get("content").asText();
        }
        throw fail(file, key + " is neither a string nor an object with a \"content\" string");
    }

    private static int resolveId(Path dir, Map<String, Integer> vocab, Map<String, Integer> added, String key,
            String token) {
        Integer id = added.get(token);
        if (id == null) {
            id = vocab.get(token);
        }
        if (id == null) {
            throw new MarbleException(dir + ": " + key + " \"" + token
                    + "\" is neither in vocab.json nor an added token");
        }
        return id;
    }

    private static int maxLength(Path file, JsonNode config) {
        JsonNode n = config.get("model_max_length");
        if (n == null || n.isNull()) {
            return DEFAULT_MAX_LENGTH;
        }
        if (!n.isNumber()) {
            throw fail(file, "model_max_length " + n + " is not a number");
        }
        double v = n.asDouble();
        if (v > MAX_SANE_LENGTH) {
            return DEFAULT_MAX_LENGTH;
        }
        if (!n.isIntegralNumber() || v < 2) {
            throw fail(file, "model_max_length " + n + " is not an integer >= 2 (BOS and EOS need room)");
        }
        return n.asInt();
    }

    private static int parseId(Path file, String what, String text) {
        try {
            int id = Integer.parseInt(text);
            if (id >= 0) {
                return id;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw fail(file, what + " \"" + text + "\" is not a non-negative integer");
    }

    /** Python's str.strip(): whitespace as str.isspace sees it, at both ends. */
    private static String strip(String s) {
        int from = 0;
        int to = s.length();
        while (from < to && isPythonSpace(s.charAt(from))) {
            from++;
        }
        while (to > from && isPythonSpace(s.charAt(to - 1))) {
            to--;
        }
        return s.substring(from, to);
    }

    private static boolean isPythonSpace(char c) {
        if (c < 0x80) {
            return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
        }
        return c == 0x85 || c == 0x2028 || c == 0x2029 || Character.getType(c) == Character.SPACE_SEPARATOR;
    }

    private static MarbleException fail(Path file, String problem) {
        return new MarbleException(file + ": " + problem);
    }

    private static String oneLine(Exception e) {
        String m = e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage();
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }

    // ---------------------------------------------------------------- encoding

    /** {@code maxLength} ids: BOS, the (truncated) prompt tokens, EOS, then pad ids. */
    public int[] encode(String prompt) {
        return encodeDetailed(prompt).inputIds();
    }

    /** The padded ids with the real and the untruncated length (both count BOS and EOS). */
    public Encoding encodeDetailed(String prompt) {
        int[] tokens = tokenIds(prompt);
        int kept = Math.min(tokens.length, maxLength - 2);
        int[] ids = new int[maxLength];
        ids[0] = bosId;
        System.arraycopy(tokens, 0, ids, 1, kept);
        ids[kept + 1] = eosId;
        Arrays.fill(ids, kept + 2, maxLength, padId);
        return new Encoding(ids, kept + 2, tokens.length + 2);
    }

    /** Length of the prompt's ids with BOS and EOS, before truncation. */
    public int untruncatedLength(String prompt) {
        return tokenIds(prompt).length + 2;
    }

    /** The prompt's token ids without BOS/EOS, untruncated (e.g. for splitting long prompts). */
    public int[] tokenIds(String prompt) {
        int[] symbols = symbols(prompt);
        for (int i = 0; i < symbols.length; i++) {
            symbols[i] = idOfSymbol[symbols[i]];
        }
        return symbols;
    }

    /** The prompt's tokens as strings ("photo</w>", ...), without BOS/EOS, untruncated: for debugging. */
    public List<String> tokens(String prompt) {
        int[] symbols = symbols(prompt);
        List<String> out = new ArrayList<>(symbols.length);
        for (int s : symbols) {
            out.add(bpe.symbolText(s));
        }
        return out;
    }

    public int maxLength() {
        return maxLength;
    }

    public int bosId() {
        return bosId;
    }

    public int eosId() {
        return eosId;
    }

    public int padId() {
        return padId;
    }

    /** Entries in vocab.json (added tokens may use ids beyond it). */
    public int vocabSize() {
        return vocabSize;
    }

    /** Step 1: split out added tokens (leftmost match, longest first), pass the text between on. */
    private int[] symbols(String prompt) {
        if (prompt == null) {
            throw new MarbleException("prompt is null");
        }
        SymbolList out = new SymbolList();
        int textStart = 0;
        for (int i = 0; i < prompt.length(); ) {
            if (splitFirstChars.indexOf(prompt.charAt(i)) < 0) {
                i++;
                continue;
            }
            int hit = -1;
            for (int t = 0; t < splitTokens.length && hit < 0; t++) {
                if (prompt.startsWith(splitTokens[t], i)) {
                    hit = t;
                }
            }
            if (hit < 0) {
                i++;
                continue;
            }
            text(prompt.substring(textStart, i), out);
            out.add(splitSymbols[hit]);
            i += splitTokens[hit].length();
            textStart = i;
        }
        text(prompt.substring(textStart), out);
        return out.toArray();
    }

    /** Steps 2-4 for a piece of text between added tokens, through the word cache. */
    private void text(String piece, SymbolList out) {
        if (piece.isEmpty()) {
            return;
        }
        for (String word : BasicTokenizer.words(piece)) {
            int[] symbols = cache.get(word);
            if (symbols == null) {
                SymbolList w = new SymbolList();
                splitWord(word, w);
                symbols = w.toArray();
                if (word.length() <= MAX_CACHED_WORD) {
                    if (cache.size() >= CACHE_LIMIT) {
                        cache.clear();
                    }
                    cache.put(word, symbols);
                }
            }
            out.addAll(symbols);
        }
    }

    /**
     * CLIP's regex over one lower-cased word (no whitespace inside), alternatives tried in order at
     * each position: the two special literals and the contractions, a run of letters, one number
     * character, a run of anything else. Under IGNORECASE, Python's regex module lets "ſ"
     * (U+017F) match "s" in the literals, and matches U+0345 (a mark whose case variants are
     * letters) with no alternative at all, so it is skipped. Upper-case forms need no care: the
     * word is already lower-cased.
     */
    private void splitWord(String w, SymbolList out) {
        int n = w.length();
        int i = 0;
        while (i < n) {
            int literal = matchLiteral(w, i);
            if (literal > 0) {
                piece(w.substring(i, i + literal), out);
                i += literal;
                continue;
            }
            int cp = w.codePointAt(i);
            int len = Character.charCount(cp);
            if (isLetter(cp)) {
                int j = i + len;
                while (j < n && isLetter(w.codePointAt(j))) {
                    j += Character.charCount(w.codePointAt(j));
                }
                piece(w.substring(i, j), out);
                i = j;
            } else if (isNumber(cp)) {
                piece(w.substring(i, i + len), out);
                i += len;
            } else if (cp == 0x0345) {
                i += len;
            } else {
                int j = i + len;
                while (j < n) {
                    int c = w.codePointAt(j);
                    if (isLetter(c) || isNumber(c) || c == 0x0345) {
                        break;
                    }
                    j += Character.charCount(c);
                }
                piece(w.substring(i, j), out);
                i = j;
            }
        }
    }

    private static final String[] LITERALS = {
            START_OF_TEXT, END_OF_TEXT, "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};

    /** Length of the first regex literal matching at {@code at}, or 0. */
    private static int matchLiteral(String w, int at) {
        char c0 = w.charAt(at);
        if (c0 != '<' && c0 != '\'') {
            return 0;
        }
        for (String lit : LITERALS) {
            if (at + lit.length() <= w.length() && literalAt(w, at, lit)) {
                return lit.length();
            }
        }
        return 0;
    }

    private static boolean literalAt(String w, int at, String lit) {
        for (int k = 0; k < lit.length(); k++) {
            char c = w.charAt(at + k);
            char l = lit.charAt(k);
            if (c != l && !(l == 's' && c == '\u017F')) {
                return false;
            }
        }
        return true;
    }

    private static boolean isLetter(int cp) {
        return switch (Character.getType(cp)) {
            case Character.UPPERCASE_LETTER, Character.LOWERCASE_LETTER, Character.TITLECASE_LETTER,
                 Character.MODIFIER_LETTER, Character.OTHER_LETTER -> true;
            default -> false;
        };
    }

    private static boolean isNumber(int cp) {
        return switch (Character.getType(cp)) {
            case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> true;
            default -> false;
        };
    }

    /** Step 4: one regex piece to BPE symbols. */
    private void piece(String piece, SymbolList out) {
        // The reference's BPE cache is seeded with the two literals, which stay single tokens.
        if (piece.equals(START_OF_TEXT)) {
            out.add(startOfTextSymbol);
            return;
        }
        if (piece.equals(END_OF_TEXT)) {
            out.add(endOfTextSymbol);
            return;
        }
        out.addAll(bpe.encode(piece));
    }

    /** A growable int list, to avoid boxing on the per-prompt path. */
    private static final class SymbolList {
        private int[] data = new int[32];
        private int size;

        void add(int v) {
            if (size == data.length) {
                data = Arrays.copyOf(data, 2 * size);
            }
            data[size++] = v;
        }

        void addAll(int[] vs) {
            if (size + vs.length > data.length) {
                data = Arrays.copyOf(data, Math.max(2 * data.length, size + vs.length));
            }
            System.arraycopy(vs, 0, data, size, vs.length);
            size += vs.length;
        }

        int[] toArray() {
            return Arrays.copyOf(data, size);
        }
    }
}
