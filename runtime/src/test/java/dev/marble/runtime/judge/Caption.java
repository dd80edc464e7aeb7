package dev.marble.runtime.judge;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A caption of the shapes grammar (tools/train/data.py), parsed:
 * <pre>
 *   one shape:  a [size] [colour] SHAPE [position] [background]
 *   two shapes: a [size] [colour] SHAPE RELATION a [size] [colour] SHAPE [background]
 *   background: on a COLOUR background | on a COLOUR and COLOUR background (top half, bottom half)
 * </pre>
 *
 * @param text       the caption as given
 * @param things     one or two shapes, in caption order
 * @param relation   how the first shape stands to the second ("above", ..., "next to"), or null
 * @param position   where the single shape is ("in the center", ...), or null
 * @param background one colour, or two (top, bottom), or empty when not named
 */
record Caption(String text, List<Thing> things, String relation, String position, List<String> background) {
    static final List<String> SHAPES = List.of("circle", "square", "triangle", "star", "diamond", "heart");
    static final List<String> SIZES = List.of("small", "large");
    static final List<String> POSITIONS = List.of("in the center", "on the left", "on the right", "at the top",
            "at the bottom", "in the top left corner", "in the top right corner", "in the bottom left corner",
            "in the bottom right corner");
    static final List<String> RELATIONS = List.of("above", "below", "to the left of", "to the right of", "next to");

    /** One shape of the caption; size and colour are null when the caption leaves them out. */
    record Thing(String size, String colour, String shape) {
    }

    Caption {
        things = List.copyOf(things);
        background = List.copyOf(background);
    }

    /** This caption with other parts, written out in the grammar. */
    Caption with(List<Thing> things, String relation, String position, List<String> background) {
        StringBuilder sb = new StringBuilder(phrase(things.get(0)));
        if (relation != null) {
            sb.append(' ').append(relation).append(' ').append(phrase(things.get(1)));
        } else if (position != null) {
            sb.append(' ').append(position);
        }
        if (!background.isEmpty()) {
            String first = background.get(0);
            sb.append(" on ").append(article(first)).append(' ').append(String.join(" and ", background))
                    .append(" background");
        }
        return parse(sb.toString());
    }

    private static String phrase(Thing t) {
        StringBuilder words = new StringBuilder();
        for (String w : new String[] {t.size(), t.colour(), t.shape()}) {
            if (w != null) {
                words.append(words.isEmpty() ? "" : " ").append(w);
            }
        }
        return article(words.toString()) + " " + words;
    }

    private static String article(String word) {
        return "aeiou".indexOf(word.charAt(0)) >= 0 ? "an" : "a";
    }

    /** Parses {@code text}; anything outside the grammar is an IllegalArgumentException naming the caption. */
    static Caption parse(String text) {
        return new Parser(text).caption();
    }

    private static final class Parser {
        private final String text;
        private final List<String> words;
        private int at;

        Parser(String text) {
            this.text = text;
            this.words = Arrays.asList(text.trim().split("\\s+"));
        }

        Caption caption() {
            List<Thing> things = new ArrayList<>();
            things.add(thing());
            String relation = phrase(RELATIONS);
            String position = null;
            if (relation != null) {
                things.add(thing());
            } else {
                position = phrase(POSITIONS);
            }
            List<String> background = background();
            if (at != words.size()) {
                throw error("unexpected '" + words.get(at) + "'");
            }
            return new Caption(text, things, relation, position, background);
        }

        private Thing thing() {
            String article = next();
            if (!article.equals("a") && !article.equals("an")) {
                throw error("expected 'a' or 'an', got '" + article + "'");
            }
            String size = SIZES.contains(peek()) ? next() : null;
            String colour = Palette.isColour(peek()) ? next() : null;
            String shape = next();
            if (!SHAPES.contains(shape)) {
                throw error("expected a shape, got '" + shape + "'");
            }
            return new Thing(size, colour, shape);
        }

        private List<String> background() {
            if (!(peek().equals("on") && at + 1 < words.size() && words.get(at + 1).startsWith("a"))) {
                return List.of();
            }
            at += 2;
            List<String> colours = new ArrayList<>();
            colours.add(colour());
            if (peek().equals("and")) {
                at++;
                colours.add(colour());
            }
            if (!next().equals("background")) {
                throw error("expected 'background'");
            }
            return colours;
        }

        private String colour() {
            String c = next();
            if (!Palette.isColour(c)) {
                throw error("expected a colour, got '" + c + "'");
            }
            return c;
        }

        /** The longest of {@code phrases} that the words at the cursor spell, consumed; or null. */
        private String phrase(List<String> phrases) {
            String best = null;
            for (String p : phrases) {
                List<String> pw = Arrays.asList(p.split(" "));
                if (at + pw.size() <= words.size() && words.subList(at, at + pw.size()).equals(pw)
                        && (best == null || p.length() > best.length())) {
                    best = p;
                }
            }
            if (best != null) {
                at += best.split(" ").length;
            }
            return best;
        }

        private String peek() {
            return at < words.size() ? words.get(at) : "";
        }

        private String next() {
            if (at >= words.size()) {
                throw error("ends too early");
            }
            return words.get(at++);
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("caption '" + text + "': " + what);
        }
    }
}
