package dev.marble.runtime.clip;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.marble.tensors.DType;
import dev.marble.tensors.MarbleException;
import dev.marble.tensors.Tensor;
import dev.marble.weights.SafetensorsFile;
import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ClipTokenizerTest {
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @TempDir
    Path tmp;

    // ---------------------------------------------------------------- golden cases

    @Test
    void goldenSd15Tiny() throws IOException {
        checkGoldenCase("tokenizer_sd15-tiny", 49407);
    }

    /** pad_token "!": padding is id 0 and every literal "!" in a prompt becomes id 0 too. */
    @Test
    void goldenSd2StylePad() throws IOException {
        checkGoldenCase("tokenizer_tokenizer-sd2-style-pad", 0);
    }

    private void checkGoldenCase(String caseId, int expectedPadId) throws IOException {
        Golden g = Golden.load(caseId);
        ClipTokenizer tok = ClipTokenizer.load(tokenizerDir(g.root.resolve(g.params.get("tokenizer_dir").asText())));
        assertEquals(49408, tok.vocabSize(), "vocab entries");
        assertEquals(77, tok.maxLength(), "model_max_length");
        assertEquals(expectedPadId, tok.padId(), "pad id");
        assertEquals(g.params.get("pad_token_id").asInt(), tok.padId(), "pad id vs manifest");

        int passed = 0;
        List<String> failures = new ArrayList<>();
        try (SafetensorsFile f = SafetensorsFile.open(g.caseFile)) {
            long[][] ids = rows(f.tensor("input_ids"));
            long[][] mask = rows(f.tensor("attention_mask"));
            long[] untruncated = longs(f.tensor("untruncated_length"));
            assertEquals(g.prompts.size(), ids.length, "prompt count vs input_ids rows");
            for (int p = 0; p < g.prompts.size(); p++) {
                String prompt = g.prompts.get(p);
                ClipTokenizer.Encoding e = tok.encodeDetailed(prompt);
                long[] gotIds = Arrays.stream(e.inputIds()).asLongStream().toArray();
                long[] gotMask = Arrays.stream(e.attentionMask()).asLongStream().toArray();
                boolean ok = Arrays.equals(ids[p], gotIds) && Arrays.equals(mask[p], gotMask)
                        && untruncated[p] == e.untruncatedLength()
                        && tok.untruncatedLength(prompt) == e.untruncatedLength()
                        && Arrays.equals(e.inputIds(), tok.encode(prompt));
                if (ok) {
                    passed++;
                } else {
                    failures.add("prompt " + p + " " + escape(prompt)
                            + "\n  expected ids " + Arrays.toString(ids[p]) + " untruncated " + untruncated[p]
                            + "\n  actual   ids " + Arrays.toString(gotIds) + " untruncated " + e.untruncatedLength()
                            + "\n  tokens " + tok.tokens(prompt)
                            + (Arrays.equals(mask[p], gotMask) ? "" : "\n  attention_mask differs"));
                }
            }
        }
        System.out.printf("%s: %d/%d prompts match exactly%n", caseId, passed, g.prompts.size());
        if (!failures.isEmpty()) {
            fail(caseId + ": " + failures.size() + " of " + g.prompts.size() + " prompts differ:\n"
                    + String.join("\n", failures.subList(0, Math.min(20, failures.size()))));
        }
    }

    /** Load time, then the mean time per prompt once the BPE cache is warm. */
    @Test
    void timing() throws IOException {
        Golden g = Golden.load("tokenizer_sd15-tiny");
        Path dir = g.root.resolve("models/sd15-tiny/tokenizer");
        long t0 = System.nanoTime();
        ClipTokenizer tok = ClipTokenizer.load(dir);
        long loadNs = System.nanoTime() - t0;

        t0 = System.nanoTime();
        for (String p : g.prompts) {
            tok.encode(p);
        }
        long coldNs = System.nanoTime() - t0;
        long sink = 0;
        for (int r = 0; r < 30; r++) {
            for (String p : g.prompts) {
                sink += tok.encode(p)[1];
            }
        }
        int rounds = 50;
        t0 = System.nanoTime();
        for (int r = 0; r < rounds; r++) {
            for (String p : g.prompts) {
                sink += tok.encode(p)[1];
            }
        }
        double meanUs = (System.nanoTime() - t0) / 1e3 / (rounds * g.prompts.size());
        System.out.printf("ClipTokenizer: load %.1f ms (vocab %d), first pass %.1f us/prompt, warm mean %.2f us/prompt"
                + " (%d prompts x %d rounds, sink %d)%n", loadNs / 1e6, tok.vocabSize(),
                coldNs / 1e3 / g.prompts.size(), meanUs, g.prompts.size(), rounds, sink);
        assertTrue(meanUs < 1000, "warm mean " + meanUs + " us per prompt, expected well under 1 ms");
    }

    /** Several threads on one cold tokenizer give the same ids as one thread. */
    @Test
    void concurrentEncodingAgrees() throws Exception {
        Golden g = Golden.load("tokenizer_sd15-tiny");
        Path dir = g.root.resolve("models/sd15-tiny/tokenizer");
        ClipTokenizer serial = sd15();
        ClipTokenizer shared = ClipTokenizer.load(dir);
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<int[][]>> results = new ArrayList<>();
            for (int t = 0; t < 4; t++) {
                results.add(pool.submit(() -> g.prompts.stream().map(shared::encode).toArray(int[][]::new)));
            }
            for (Future<int[][]> r : results) {
                int[][] got = r.get();
                for (int p = 0; p < g.prompts.size(); p++) {
                    assertArrayEquals(serial.encode(g.prompts.get(p)), got[p], "prompt " + p);
                }
            }
        } finally {
            pool.shutdownNow();
        }
    }

    // ---------------------------------------------------------------- BPE against the reference loop

    /**
     * The heap-ordered BPE against the reference's loop written out on strings (take the
     * lowest-ranked adjacent pair, merge all its occurrences left to right, repeat), on random words
     * with many repeats ("abab...", "aaaa...") and multi-byte characters.
     */
    @Test
    void bpeMatchesTheReferenceLoop() throws IOException {
        Path merges = Golden.goldenRoot().resolve("models/sd15-tiny/tokenizer/merges.txt");
        List<String> lines = Files.readAllLines(merges);
        Map<String, Integer> ranks = new HashMap<>();
        List<String[]> pairs = new ArrayList<>();
        for (int i = 1; i < lines.size() && i <= ClipTokenizer.MAX_MERGES; i++) {
            String[] p = lines.get(i).split(" ");
            ranks.put(p[0] + " " + p[1], i - 1);
            pairs.add(p);
        }
        BytePairEncoder bpe = new BytePairEncoder(pairs, List.of(), merges);
        String[] alphabets = {"ab", "a", "abc", "etaoinshrdlu", "abcdefghijklmnopqrstuvwxyz", "e\u00E9\u6771\uD83D\uDC31!?.,"};
        Random rnd = new Random(7);
        for (int k = 0; k < 1500; k++) {
            String alphabet = alphabets[k % alphabets.length];
            int[] cps = alphabet.codePoints().toArray();
            StringBuilder word = new StringBuilder();
            for (int n = 1 + rnd.nextInt(k % 10 == 0 ? 300 : 30); n > 0; n--) {
                word.appendCodePoint(cps[rnd.nextInt(cps.length)]);
            }
            List<String> got = new ArrayList<>();
            for (int sym : bpe.encode(word.toString())) {
                got.add(bpe.symbolText(sym));
            }
            assertEquals(referenceBpe(word.toString(), ranks), got, "word " + escape(word.toString()));
        }
    }

    private static List<String> referenceBpe(String piece, Map<String, Integer> ranks) {
        List<String> word = new ArrayList<>();
        for (byte b : piece.getBytes(StandardCharsets.UTF_8)) {
            word.add(String.valueOf(BytePairEncoder.BYTE_TO_CHAR[b & 0xFF]));
        }
        word.set(word.size() - 1, word.getLast() + "</w>");
        while (word.size() > 1) {
            String best = null;
            int bestRank = Integer.MAX_VALUE;
            for (int i = 0; i + 1 < word.size(); i++) {
                Integer r = ranks.get(word.get(i) + " " + word.get(i + 1));
                if (r != null && r < bestRank) {
                    bestRank = r;
                    best = word.get(i) + " " + word.get(i + 1);
                }
            }
            if (best == null) {
                break;
            }
            String first = best.substring(0, best.indexOf(' '));
            String second = best.substring(best.indexOf(' ') + 1);
            List<String> merged = new ArrayList<>();
            for (int i = 0; i < word.size(); ) {
                if (i + 1 < word.size() && word.get(i).equals(first) && word.get(i + 1).equals(second)) {
                    merged.add(first + second);
                    i += 2;
                } else {
                    merged.add(word.get(i++));
                }
            }
            word = merged;
        }
        return word;
    }

    // ---------------------------------------------------------------- text clean-up semantics

    /** Expectations from the reference's rules (BasicTokenizer + Python str.lower), not from this code. */
    @Test
    void basicTokenizerFollowsTheReference() {
        // NBSP, ideographic space, em space, tab and U+2028 separate; ZWSP, soft hyphen, BOM, BEL, NUL,
        // U+FFFD and a private-use character vanish.
        assertEquals(List.of("a", "b", "c", "d", "e", "fg", "hijk"), BasicTokenizer.words(
                "a\u00A0b\u3000c\u2003d\te\u2028f\u200Bg h\u00ADi\uFEFF\u0007\u0000\uFFFD\uE000jk"));
        // CJK ideographs are spaced out, kana and hangul are not.
        assertEquals(List.of("東", "京", "タワー", "한국어"), BasicTokenizer.words("東京タワー 한국어"));
        // NFC composes e + U+0301; accents are kept; HTML entities stay.
        assertEquals(List.of("caf\u00E9", "&amp;"), BasicTokenizer.words("CAFE\u0301 &AMP;"));
        // Python lower: İ -> i + U+0307; Final_Sigma.
        assertEquals("i\u0307stanbul", BasicTokenizer.pythonLower("\u0130STANBUL"));
        assertEquals("\u03BF\u03B4\u03C5\u03C3\u03C3\u03B5\u03C5\u03C2",
                BasicTokenizer.pythonLower("\u039F\u0394\u03A5\u03A3\u03A3\u0395\u03A5\u03A3"));
        assertEquals("\u03C3", BasicTokenizer.pythonLower("\u03A3"));
        // Σ before an apostrophe (case-ignorable) then a letter is not final; before a digit it is.
        assertEquals("\u03B1\u03C3'\u03B2", BasicTokenizer.pythonLower("\u0391\u03A3'\u0392"));
        assertEquals("\u03B1\u03C21", BasicTokenizer.pythonLower("\u0391\u03A31"));
    }

    @Test
    void specialTokensAndLiteralsInText() throws IOException {
        ClipTokenizer tok = sd15();
        // Split out before clean-up (case-sensitive) ...
        assertEquals(List.of("a</w>", "<|endoftext|>", "b</w>"), tok.tokens("a<|endoftext|>b"));
        // ... and matched again by the CLIP regex after lower-casing.
        assertEquals(List.of("a</w>", "<|endoftext|>", "b</w>"), tok.tokens("a <|EndOfText|> b"));
        assertEquals(49406, tok.tokenIds("<|STARTOFTEXT|>")[0]);
        ClipTokenizer.Encoding e = tok.encodeDetailed("");
        assertEquals(2, e.length());
        assertEquals(49406, e.inputIds()[0]);
        assertEquals(49407, e.inputIds()[1]);
        assertEquals(77, e.inputIds().length);
    }

    // ---------------------------------------------------------------- bad input

    @Test
    void missingFilesAreNamed() throws IOException {
        MarbleException e = assertThrows(MarbleException.class, () -> ClipTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("vocab.json") && e.getMessage().contains("missing"), e.getMessage());

        Files.writeString(tmp.resolve("vocab.json"), "{\"a</w>\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
        e = assertThrows(MarbleException.class, () -> ClipTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("merges.txt") && e.getMessage().contains("missing"), e.getMessage());
    }

    @Test
    void malformedFilesAreNamed() throws IOException {
        Files.writeString(tmp.resolve("vocab.json"), "{\"a</w>\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
        Files.writeString(tmp.resolve("merges.txt"), "#version: 0.2\na </w>\nthree parts here\n");
        MarbleException e = assertThrows(MarbleException.class, () -> ClipTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("merges.txt") && e.getMessage().contains("line 3"), e.getMessage());

        Files.writeString(tmp.resolve("merges.txt"), "#version: 0.2\nab c\na b\n");
        e = assertThrows(MarbleException.class, () -> ClipTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("merges.txt") && e.getMessage().contains("line 3")
                && e.getMessage().contains("training order"), e.getMessage());

        Files.writeString(tmp.resolve("merges.txt"), "#version: 0.2\na </w>\n");
        Files.writeString(tmp.resolve("vocab.json"), "{\"a</w>\": \"zero\"}");
        e = assertThrows(MarbleException.class, () -> ClipTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("vocab.json"), e.getMessage());

        Files.writeString(tmp.resolve("vocab.json"), "{\"a</w>\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2");
        e = assertThrows(MarbleException.class, () -> ClipTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("vocab.json") && e.getMessage().contains("JSON"), e.getMessage());

        Files.writeString(tmp.resolve("vocab.json"), "{\"a</w>\": 0, \"<|startoftext|>\": 1, \"<|endoftext|>\": 2}");
        Files.writeString(tmp.resolve("tokenizer_config.json"), "{\"pad_token\": \"<pad>\"}");
        e = assertThrows(MarbleException.class, () -> ClipTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("pad_token") && e.getMessage().contains("<pad>"), e.getMessage());

        Files.writeString(tmp.resolve("tokenizer_config.json"), "{\"model_max_length\": 1}");
        e = assertThrows(MarbleException.class, () -> ClipTokenizer.load(tmp));
        assertTrue(e.getMessage().contains("tokenizer_config.json") && e.getMessage().contains("model_max_length"),
                e.getMessage());

        // A minimal valid folder loads, with CLIPTokenizer's defaults and an unknown-word fallback.
        Files.writeString(tmp.resolve("tokenizer_config.json"), "{\"model_max_length\": 5}");
        ClipTokenizer tok = ClipTokenizer.load(tmp);
        assertArrayEquals(new int[] {1, 0, 0, 0, 2}, tok.encode("a a a"));
        assertArrayEquals(new int[] {1, 2, 2, 2, 2}, tok.encode("xyz"));
        assertEquals(6, tok.untruncatedLength("xyzw"));
    }

    // ---------------------------------------------------------------- helpers

    private static ClipTokenizer sd15;

    private static synchronized ClipTokenizer sd15() {
        if (sd15 == null) {
            sd15 = ClipTokenizer.load(Golden.goldenRoot().resolve("models/sd15-tiny/tokenizer"));
        }
        return sd15;
    }

    /** The golden case, its prompts and parameters from manifest.json. */
    private record Golden(Path root, Path caseFile, JsonNode params, List<String> prompts) {
        static Path goldenRoot() {
            String prop = System.getProperty("marble.golden");
            if (prop == null || !Files.isDirectory(Path.of(prop))) {
                fail("golden folder missing: system property marble.golden = " + prop);
            }
            return Path.of(prop);
        }

        static Golden load(String caseId) throws IOException {
            Path root = goldenRoot();
            // The manifest holds -Infinity in some measured fields.
            JsonNode manifest = new ObjectMapper()
                    .enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature())
                    .readTree(root.resolve("manifest.json").toFile());
            for (JsonNode c : manifest.get("cases")) {
                if (c.get("id").asText().equals(caseId)) {
                    List<String> prompts = new ArrayList<>();
                    c.get("params").get("prompts").forEach(p -> prompts.add(p.asText()));
                    return new Golden(root, root.resolve(c.get("file").asText()), c.get("params"), prompts);
                }
            }
            throw new AssertionError("case " + caseId + " not in " + root.resolve("manifest.json"));
        }
    }

    /**
     * The golden folder stores symbolic links as small text files holding the relative target path
     * (tokenizer-sd2-style-pad/vocab.json says "../sd15-tiny/tokenizer/vocab.json"). Such a folder is
     * rebuilt in a temp dir with the targets copied in; a folder without link files is used as is.
     */
    private Path tokenizerDir(Path dir) throws IOException {
        boolean links = false;
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) {
                if (linkTarget(f) != null) {
                    links = true;
                }
            }
        }
        if (!links) {
            return dir;
        }
        Path copy = Files.createDirectories(tmp.resolve(dir.getFileName().toString()));
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) {
                Path target = linkTarget(f);
                Files.copy(target != null ? target : f, copy.resolve(f.getFileName().toString()));
            }
        }
        return copy;
    }

    private static Path linkTarget(Path f) throws IOException {
        if (!Files.isRegularFile(f) || Files.size(f) > 512) {
            return null;
        }
        String text = Files.readString(f).strip();
        if (text.startsWith("{") || text.contains("\n")) {
            return null;
        }
        Path target = f.resolveSibling(text).normalize();
        return Files.isRegularFile(target) ? target : null;
    }

    /** A contiguous 2-D I64 tensor as rows. */
    private static long[][] rows(Tensor t) {
        long[] flat = longs(t);
        int c = (int) t.dim(1);
        long[][] out = new long[(int) t.dim(0)][];
        for (int i = 0; i < out.length; i++) {
            out[i] = Arrays.copyOfRange(flat, i * c, (i + 1) * c);
        }
        return out;
    }

    private static long[] longs(Tensor t) {
        assertEquals(DType.I64, t.dtype(), "dtype");
        long[] out = new long[(int) t.numel()];
        for (int i = 0; i < out.length; i++) {
            out[i] = t.data().get(I64, (long) i * 8);
        }
        return out;
    }

    private static String escape(String s) {
        StringBuilder b = new StringBuilder("\"");
        s.codePoints().forEach(cp -> {
            if (cp >= 0x20 && cp < 0x7F) {
                b.append((char) cp);
            } else {
                b.append(String.format(cp > 0xFFFF ? "\\U%08x" : "\\u%04x", cp));
            }
        });
        return b.append('"').toString();
    }
}
