package dev.marble.runtime.clip;

import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;

/**
 * The text clean-up CLIPTokenizer runs when ftfy is not installed: transformers'
 * {@code BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize(text)}, then
 * {@code " ".join(...).lower()}. Accents are kept, punctuation is not split off here (the CLIP
 * regex does that later) and HTML entities are left alone.
 *
 * <p>Steps, in the reference's order: drop U+0000, U+FFFD and every category-C character except
 * \t \n \r; turn whitespace into spaces; put spaces around CJK ideographs; NFC; split on
 * whitespace; lower-case each word as Python's {@code str.lower} does.
 */
final class BasicTokenizer {
    private BasicTokenizer() {
    }

    /** The lower-cased, whitespace-free words of one piece of prompt text. */
    static List<String> words(String text) {
        String cleaned = nfc(clean(text));
        List<String> words = new ArrayList<>();
        int n = cleaned.length();
        int i = 0;
        while (i < n) {
            while (i < n && cleaned.charAt(i) == ' ') {
                i++;
            }
            int start = i;
            while (i < n && cleaned.charAt(i) != ' ') {
                i++;
            }
            if (i > start) {
                words.add(pythonLower(cleaned.substring(start, i)));
            }
        }
        return words;
    }

    /**
     * BasicTokenizer._clean_text and _tokenize_chinese_chars in one pass. Every character Python's
     * {@code str.split()} would split on is already a space afterwards: \t \n \r and Zs are mapped
     * by _is_whitespace, the other ASCII/Latin-1 whitespace is category Cc and dropped, and the
     * line/paragraph separators U+2028/U+2029 (kept by the clean-up, split on by str.split) are
     * mapped here directly. NFC cannot create whitespace (no canonical decomposition yields it).
     */
    static String clean(String text) {
        if (isPrintableAscii(text)) {
            return text; // nothing to drop, map or space out
        }
        StringBuilder out = new StringBuilder(text.length() + 8);
        for (int i = 0; i < text.length(); ) {
            int cp = text.codePointAt(i);
            i += Character.charCount(cp);
            if (cp == '\t' || cp == '\n' || cp == '\r') {
                out.append(' ');
                continue;
            }
            if (cp == 0 || cp == 0xFFFD) {
                continue;
            }
            switch (Character.getType(cp)) {
                // _is_control: the whole "C" category (lone surrogates included).
                case Character.CONTROL, Character.FORMAT, Character.UNASSIGNED, Character.PRIVATE_USE,
                     Character.SURROGATE -> {
                }
                case Character.SPACE_SEPARATOR, Character.LINE_SEPARATOR, Character.PARAGRAPH_SEPARATOR ->
                        out.append(' ');
                default -> {
                    if (isCjkIdeograph(cp)) {
                        out.append(' ').appendCodePoint(cp).append(' ');
                    } else {
                        out.appendCodePoint(cp);
                    }
                }
            }
        }
        return out.toString();
    }

    private static boolean isPrintableAscii(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c > 0x7E) {
                return false;
            }
        }
        return true;
    }

    /** BasicTokenizer._is_chinese_char: the CJK Unified / Compatibility Ideograph blocks it lists. */
    static boolean isCjkIdeograph(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF)
                || (cp >= 0x3400 && cp <= 0x4DBF)
                || (cp >= 0x20000 && cp <= 0x2A6DF)
                || (cp >= 0x2A700 && cp <= 0x2B73F)
                || (cp >= 0x2B740 && cp <= 0x2B81F)
                || (cp >= 0x2B820 && cp <= 0x2CEAF)
                || (cp >= 0xF900 && cp <= 0xFAFF)
                || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }

    /** Text made only of characters below U+0300 is already NFC: every composition needs a later one. */
    private static String nfc(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) >= 0x300) {
                return Normalizer.normalize(s, Normalizer.Form.NFC);
            }
        }
        return s;
    }

    /**
     * Python's {@code str.lower}: the full lower-case mapping (only U+0130 maps to two characters,
     * "i" + U+0307, in every locale) and the Final_Sigma rule for U+03A3 as CPython's
     * handle_capital_sigma applies it. Java's Character.toLowerCase gives the simple mapping,
     * which equals the full one everywhere else.
     */
    static String pythonLower(String s) {
        boolean ascii = true;
        boolean upper = false;
        for (int i = 0; i < s.length() && ascii; i++) {
            char c = s.charAt(i);
            ascii = c < 0x80;
            upper |= c >= 'A' && c <= 'Z';
        }
        if (ascii && !upper) {
            return s;
        }
        if (ascii) {
            char[] c = s.toCharArray();
            for (int i = 0; i < c.length; i++) {
                if (c[i] >= 'A' && c[i] <= 'Z') {
                    c[i] += 'a' - 'A';
                }
            }
            return new String(c);
        }
        StringBuilder out = new StringBuilder(s.length() + 2);
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            if (cp == 0x03A3) {
                out.append(isFinalSigma(s, i) ? '\u03C2' : '\u03C3');
            } else if (cp == 0x0130) {
                out.append("i\u0307");
            } else {
                out.appendCodePoint(Character.toLowerCase(cp));
            }
            i += Character.charCount(cp);
        }
        return out.toString();
    }

    /**
     * Final_Sigma: {@code \p{cased} \p{case-ignorable}* Σ !(\p{case-ignorable}* \p{cased})}. As in
     * CPython, a character that is both case-ignorable and cased (e.g. U+02B0) counts as ignorable.
     */
    private static boolean isFinalSigma(String s, int at) {
        int j = at;
        int c = -1;
        while (j > 0) {
            c = s.codePointBefore(j);
            j -= Character.charCount(c);
            if (!isCaseIgnorable(c)) {
                break;
            }
            c = -1;
        }
        if (c < 0 || !isCased(c)) {
            return false;
        }
        j = at + 1;
        while (j < s.length()) {
            c = s.codePointAt(j);
            j += Character.charCount(c);
            if (!isCaseIgnorable(c)) {
                return !isCased(c);
            }
        }
        return true;
    }

    /** Unicode Cased: Lowercase, Uppercase (Other_* included, as Java's predicates are) or Lt. */
    private static boolean isCased(int cp) {
        return Character.isLowerCase(cp) || Character.isUpperCase(cp) || Character.isTitleCase(cp);
    }

    /**
     * Unicode Case_Ignorable: Mn, Me, Cf, Lm, Sk, or Word_Break MidLetter / MidNumLet / Single_Quote
     * (the code points listed; WordBreakProperty.txt).
     */
    private static boolean isCaseIgnorable(int cp) {
        switch (Character.getType(cp)) {
            case Character.NON_SPACING_MARK, Character.ENCLOSING_MARK, Character.FORMAT,
                 Character.MODIFIER_LETTER, Character.MODIFIER_SYMBOL -> {
                return true;
            }
            default -> {
                return switch (cp) {
                    case 0x0027, 0x002E, 0x003A, 0x00B7, 0x0387, 0x055F, 0x05F4, 0x2018, 0x2019, 0x2024,
                         0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A -> true;
                    default -> false;
                };
            }
        }
    }
}
