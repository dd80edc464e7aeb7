package dev.marble.runtime.clip;

import dev.marble.tensors.MarbleException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * CLIP's byte-level BPE (transformers CLIPTokenizer.bpe): the UTF-8 bytes of one pre-tokenized
 * piece become printable stand-in characters (GPT-2 bytes_to_unicode), the last one carrying the
 * end-of-word marker {@code </w>}, and adjacent symbols are merged, lowest merges.txt rank first,
 * until no ranked pair is left.
 *
 * <p>Symbols are interned as ints: the table holds every string a merge can produce or consume plus
 * whatever the caller registers (the vocabulary, added tokens), so a merge is a lookup of the packed
 * pair {@code left << 32 | right} and the result needs no string building. Immutable.
 */
final class BytePairEncoder {
    static final String END_OF_WORD = "</w>";

    /** GPT-2 bytes_to_unicode: byte b -> the character standing for it inside BPE symbols. */
    static final char[] BYTE_TO_CHAR = bytesToUnicode();

    private final Map<String, Integer> symbolIndex;
    private final String[] symbolText;
    /** Packed pair (left << 32 | right) -> packed (rank << 32 | merged symbol). */
    private final Map<Long, Long> merges;
    /** [b] = symbol of byte b inside a word, [256 + b] = symbol of byte b ending a word. */
    private final int[] byteSymbol = new int[512];

    /**
     * @param rankedMerges merge pairs in rank order (index = rank); a pair listed twice keeps the
     *                     later rank, as the reference's {@code dict(zip(merges, range(n)))} does
     * @param knownSymbols strings to intern first (vocabulary entries, added tokens), so they get
     *                     symbols even when no merge mentions them
     * @param source       the merges file, for error messages (merge r is on its line r + 2)
     * @throws MarbleException if the merges are not in training order: a merge produces a symbol
     *                         that an earlier merge consumes ({@link #encode} relies on that order)
     */
    BytePairEncoder(List<String[]> rankedMerges, Iterable<String> knownSymbols, Path source) {
        Map<String, Integer> index = new HashMap<>(2 * 65536);
        for (String s : knownSymbols) {
            index.putIfAbsent(s, index.size());
        }
        for (int b = 0; b < 256; b++) {
            String c = String.valueOf(BYTE_TO_CHAR[b]);
            byteSymbol[b] = index.computeIfAbsent(c, k -> index.size());
            byteSymbol[256 + b] = index.computeIfAbsent(c + END_OF_WORD, k -> index.size());
        }
        Map<Long, Long> ranks = new HashMap<>(2 * rankedMerges.size());
        BitSet consumed = new BitSet(index.size());
        for (int rank = 0; rank < rankedMerges.size(); rank++) {
            String[] m = rankedMerges.get(rank);
            int left = index.computeIfAbsent(m[0], k -> index.size());
            int right = index.computeIfAbsent(m[1], k -> index.size());
            int merged = index.computeIfAbsent(m[0] + m[1], k -> index.size());
            if (consumed.get(merged)) {
                throw new MarbleException(source + ": line " + (rank + 2) + " produces \"" + m[0] + m[1]
                        + "\", which an earlier merge already consumes (merges not in training order)");
            }
            consumed.set(left);
            consumed.set(right);
            ranks.put(pair(left, right), (long) rank << 32 | merged);
        }
        String[] text = new String[index.size()];
        index.forEach((s, id) -> text[id] = s);
        this.symbolIndex = index;
        this.symbolText = text;
        this.merges = ranks;
    }

    int symbolCount() {
        return symbolText.length;
    }

    String symbolText(int symbol) {
        return symbolText[symbol];
    }

    /** The symbol of {@code text}, or -1 if the table does not hold it. */
    int symbolOf(String text) {
        Integer s = symbolIndex.get(text);
        return s == null ? -1 : s;
    }

    /**
     * BPE of one pre-tokenized piece (non-empty, no lone surrogates): its symbols in order.
     *
     * <p>The reference repeatedly takes the lowest-ranked adjacent pair and merges all its
     * occurrences left to right, which is quadratic in the piece length. Here the candidate pairs sit
     * in a min-heap keyed by (rank, position) over a linked list of symbols, so a long piece costs
     * O(n log n). Same result, because merges.txt lists merges in training order (checked in the
     * constructor): a symbol made by merge r only takes part in merges ranked after
     * r, so all occurrences of pair r are merged, leftmost first, before any pair it creates.
     */
    int[] encode(String piece) {
        byte[] utf8 = piece.getBytes(StandardCharsets.UTF_8);
        int n = utf8.length;
        int[] sym = new int[n];
        int[] next = new int[n]; // index of the next live symbol, n at the end, -1 once merged away
        int[] prev = new int[n];
        for (int i = 0; i < n; i++) {
            sym[i] = byteSymbol[(utf8[i] & 0xFF) + (i == n - 1 ? 256 : 0)];
            next[i] = i + 1;
            prev[i] = i - 1;
        }
        LongHeap heap = new LongHeap(n);
        for (int i = 0; i + 1 < n; i++) {
            push(heap, sym, i, i + 1);
        }
        int live = n;
        while (!heap.isEmpty()) {
            long top = heap.pop();
            int rank = (int) (top >>> 32);
            int at = (int) top;
            int right = next[at];
            if (right < 0 || right >= n) {
                continue; // merged away, or no longer has a right neighbour
            }
            Long merge = merges.get(pair(sym[at], sym[right]));
            if (merge == null || (int) (merge >>> 32) != rank) {
                continue; // stale: the pair at this position changed
            }
            sym[at] = (int) (long) merge;
            int after = next[right];
            next[at] = after;
            if (after < n) {
                prev[after] = at;
            }
            next[right] = -1;
            live--;
            if (prev[at] >= 0) {
                push(heap, sym, prev[at], at);
            }
            if (after < n) {
                push(heap, sym, at, after);
            }
        }
        int[] out = new int[live];
        for (int i = 0, k = 0; i < n; i = next[i]) {
            out[k++] = sym[i];
        }
        return out;
    }

    private void push(LongHeap heap, int[] sym, int left, int right) {
        Long merge = merges.get(pair(sym[left], sym[right]));
        if (merge != null) {
            heap.push((merge >>> 32) << 32 | left);
        }
    }

    /** A binary min-heap of longs, here (rank << 32 | position). */
    private static final class LongHeap {
        private long[] a;
        private int size;

        LongHeap(int capacity) {
            a = new long[Math.max(4, capacity)];
        }

        boolean isEmpty() {
            return size == 0;
        }

        void push(long v) {
            if (size == a.length) {
                a = Arrays.copyOf(a, 2 * size);
            }
            int i = size++;
            while (i > 0) {
                int parent = (i - 1) >>> 1;
                if (a[parent] <= v) {
                    break;
                }
                a[i] = a[parent];
                i = parent;
            }
            a[i] = v;
        }

        long pop() {
            long top = a[0];
            long v = a[--size];
            int i = 0;
            while (true) {
                int c = 2 * i + 1;
                if (c >= size) {
                    break;
                }
                if (c + 1 < size && a[c + 1] < a[c]) {
                    c++;
                }
                if (a[c] >= v) {
                    break;
                }
                a[i] = a[c];
                i = c;
            }
            a[i] = v;
            return top;
        }
    }

    private static long pair(int left, int right) {
        return (long) left << 32 | (right & 0xFFFFFFFFL);
    }

    /**
     * Printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 bytes
     * (controls, space, DEL, NBSP, soft hyphen) take U+0100, U+0101, ... in byte order, so no BPE
     * symbol contains whitespace or a control character.
     */
    private static char[] bytesToUnicode() {
        char[] table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            table[b] = printable ? (char) b : (char) next++;
        }
        return table;
    }
}
