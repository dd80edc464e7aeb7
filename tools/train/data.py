"""Procedural training data: 64x64 images of one or two simple shapes with a caption each.

Grammar (every bracketed part may be left out, so short prompts are in distribution too):
  one shape:  a [size] [colour] SHAPE [position] [background]
  two shapes: a [size] [colour] SHAPE RELATION a [size] [colour] SHAPE [background]
  size:       small | large
  position:   in the center | on the left | on the right | at the top | at the bottom |
              in the top left corner | ... (4 corners)
  relation:   above | below | to the left of | to the right of | next to
  background: on a COLOUR background | on a COLOUR and COLOUR background (top half, bottom half)
When a part is left out it is drawn at random. Shapes are rendered with 4x4 supersampling.
"""
import numpy as np

SIZE = 64
SS = 4  # supersampling factor per axis

COLOURS = {
    "red": (220, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (245, 215, 30),
    "green": (40, 160, 60),
    "blue": (35, 75, 215),
    "purple": (135, 50, 175),
    "pink": (245, 135, 190),
    "brown": (125, 75, 35),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "gray": (128, 128, 128),
}
SHAPES = ["circle", "square", "triangle", "star", "diamond", "heart"]
SIZES = {"small": (7.5, 9.5), "large": (12.0, 14.0)}  # "radius" in pixels
POSITIONS = {  # name -> (x range, y range) of the centre as fractions of the free area
    "in the center": ((0.45, 0.55), (0.45, 0.55)),
    "on the left": ((0.0, 0.15), (0.35, 0.65)),
    "on the right": ((0.85, 1.0), (0.35, 0.65)),
    "at the top": ((0.35, 0.65), (0.0, 0.15)),
    "at the bottom": ((0.35, 0.65), (0.85, 1.0)),
    "in the top left corner": ((0.0, 0.1), (0.0, 0.1)),
    "in the top right corner": ((0.9, 1.0), (0.0, 0.1)),
    "in the bottom left corner": ((0.0, 0.1), (0.9, 1.0)),
    "in the bottom right corner": ((0.9, 1.0), (0.9, 1.0)),
}
RELATIONS = ["above", "below", "to the left of", "to the right of", "next to"]
PROB_TWO = 0.6
PROB_TWO_TONE = 0.3
DROP_SIZE, DROP_COLOUR, DROP_POSITION, DROP_BACKGROUND = 0.4, 0.1, 0.3, 0.3


def vocabulary_text():
    """Every word the grammar can produce, for learning the BPE merges."""
    words = ["a", "an", "on", "background", "and"] + list(COLOURS) + SHAPES + list(SIZES)
    for phrase in list(POSITIONS) + RELATIONS:
        words += phrase.split()
    return words


def article(word):
    return "an" if word[0] in "aeiou" else "a"


def noun_phrase(size, colour, shape, rng):
    words = []
    if rng.random() >= DROP_SIZE:
        words.append(size)
    if rng.random() >= DROP_COLOUR:
        words.append(colour)
    words.append(shape)
    return article(words[0]) + " " + " ".join(words)


def polygon_mask(px, py, verts):
    """Even-odd point-in-polygon for arrays of points px, py and vertices [(x, y), ...]."""
    inside = np.zeros(np.broadcast(px, py).shape, dtype=bool)
    n = len(verts)
    for i in range(n):
        x1, y1 = verts[i]
        x2, y2 = verts[(i + 1) % n]
        crosses = (y1 > py) != (y2 > py)
        xs = x1 + (py - y1) * (x2 - x1) / (y2 - y1 + 1e-12)
        inside ^= crosses & (px < xs)
    return inside


def shape_mask(shape, px, py, cx, cy, r):
    """Coverage of one shape of "radius" r centred at (cx, cy), evaluated at points px, py."""
    x, y = px - cx, py - cy
    if shape == "circle":
        return x * x + y * y <= r * r
    if shape == "square":
        s = r * 0.86
        return (np.abs(x) <= s) & (np.abs(y) <= s)
    if shape == "diamond":
        return np.abs(x) + np.abs(y) <= r * 1.15
    if shape == "triangle":
        rr = r * 1.2
        verts = [(rr * np.cos(a), rr * np.sin(a) + 0.2 * rr) for a in np.radians([-90, 30, 150])]
        return polygon_mask(x, y, verts)
    if shape == "star":
        verts = []
        for k in range(10):
            a = np.radians(-90 + 36 * k)
            rad = r * 1.15 if k % 2 == 0 else r * 0.48
            verts.append((rad * np.cos(a), rad * np.sin(a) + 0.08 * r))
        return polygon_mask(x, y, verts)
    if shape == "heart":
        u, v = x / (r * 0.85), -(y / (r * 0.85)) + 0.15
        return (u * u + v * v - 1) ** 3 - u * u * v ** 3 <= 0
    raise ValueError(shape)


def jitter(rgb, rng):
    return np.clip(np.array(rgb, dtype=np.float32) + rng.uniform(-12, 12, 3), 0, 255)


def paint(img, shape, cx, cy, r, rgb):
    """Composites an anti-aliased shape into img [SIZE, SIZE, 3] (float, 0-255)."""
    ext = r * 1.3
    x0, x1 = max(0, int(cx - ext)), min(SIZE, int(np.ceil(cx + ext)) + 1)
    y0, y1 = max(0, int(cy - ext)), min(SIZE, int(np.ceil(cy + ext)) + 1)
    sub = (np.arange(SS) + 0.5) / SS
    px = (np.arange(x0, x1)[:, None] + sub[None]).reshape(-1)
    py = (np.arange(y0, y1)[:, None] + sub[None]).reshape(-1)
    m = shape_mask(shape, px[None, :], py[:, None], cx, cy, r).astype(np.float32)
    a = m.reshape(y1 - y0, SS, x1 - x0, SS).mean(axis=(1, 3))[..., None]
    img[y0:y1, x0:x1] = img[y0:y1, x0:x1] * (1 - a) + rgb * a


def place(r, frac):
    """Centre coordinate for a fraction of the free range [r + 1, SIZE - 1 - r]."""
    lo, hi = r + 1.0, SIZE - 1.0 - r
    return lo + (hi - lo) * frac


def two_shape_layout(relation, ra, rb, rng):
    """Centres for A RELATION B, or None if this draw does not fit."""
    if relation == "next to":
        relation = "to the left of" if rng.random() < 0.5 else "to the right of"
    ax, ay = place(ra, rng.random()), place(ra, rng.random())
    bx, by = place(rb, rng.random()), place(rb, rng.random())
    gap = max(14.0, 0.9 * (ra + rb))
    if relation in ("above", "below"):
        d = by - ay if relation == "above" else ay - by
        return (ax, ay, bx, by) if d >= gap and abs(bx - ax) <= 0.5 * d else None
    d = bx - ax if relation == "to the left of" else ax - bx
    return (ax, ay, bx, by) if d >= gap and abs(by - ay) <= 0.5 * d else None


def sample(rng):
    """One (image uint8 [64, 64, 3], caption) pair."""
    names = list(COLOURS)
    if rng.random() < PROB_TWO_TONE:
        bg = list(rng.choice(names, 2, replace=False))
        bg_phrase = "on %s %s and %s background" % (article(bg[0]), bg[0], bg[1])
    else:
        bg = [rng.choice(names)]
        bg_phrase = "on %s %s background" % (article(bg[0]), bg[0])
    img = np.empty((SIZE, SIZE, 3), dtype=np.float32)
    img[:] = jitter(COLOURS[bg[0]], rng)
    if len(bg) == 2:
        img[SIZE // 2:] = jitter(COLOURS[bg[1]], rng)
    allowed = [c for c in names if c not in bg]

    n = 2 if rng.random() < PROB_TWO else 1
    objs = []
    for _ in range(n):
        size = rng.choice(list(SIZES))
        objs.append([size, rng.choice(allowed), rng.choice(SHAPES), rng.uniform(*SIZES[size])])
    if n == 1:
        size, colour, shape, r = objs[0]
        pos = rng.choice(list(POSITIONS))
        (fx0, fx1), (fy0, fy1) = POSITIONS[pos]
        centres = [(place(r, rng.uniform(fx0, fx1)), place(r, rng.uniform(fy0, fy1)))]
        caption = noun_phrase(size, colour, shape, rng)
        if rng.random() >= DROP_POSITION:
            caption += " " + pos
        else:
            centres = [(place(r, rng.random()), place(r, rng.random()))]
    else:
        relation = rng.choice(RELATIONS)
        while True:
            layout = two_shape_layout(relation, objs[0][3], objs[1][3], rng)
            if layout is not None:
                break
        centres = [layout[:2], layout[2:]]
        caption = noun_phrase(*objs[0][:3], rng) + " " + relation + " " + noun_phrase(*objs[1][:3], rng)
    if rng.random() >= DROP_BACKGROUND:
        caption += " " + bg_phrase
    for (size, colour, shape, r), (cx, cy) in zip(objs, centres):
        paint(img, shape, cx, cy, r, jitter(COLOURS[colour], rng))
    return np.round(img).astype(np.uint8), caption


def batch(rng, n):
    """n samples as float images [n, 3, 64, 64] in [-1, 1] and a list of captions."""
    imgs, caps = zip(*(sample(rng) for _ in range(n)))
    x = np.stack(imgs).astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1.0
    return x, list(caps)


def word_counts(rng, n=2000):
    """Word frequencies over n sampled captions (weights for the BPE merges), plus every
    grammar word at least once."""
    counts = {w: 1 for w in vocabulary_text()}
    for _ in range(n):
        for w in sample(rng)[1].split():
            counts[w] += 1
    return counts


# The parts a caption can name (caption_parts).
PARTS = ["shape", "colour", "position", "relation", "shape 1", "colour 1", "shape 2", "colour 2", "background"]
_LONGEST_FIRST = sorted(POSITIONS, key=len, reverse=True)  # "in the top left corner" before "at the top"


def shape_and_colour(noun_phrase):
    """("circle", "red") for "a small red circle"; the colour is None when the caption leaves it out."""
    words = noun_phrase.split()
    colours = [w for w in words if w in COLOURS]
    return words[-1], colours[0] if colours else None


def caption_parts(caption):
    """The caption's parts as {part: class index}, only the parts it names."""
    noun_part = caption.split(" on a")[0]  # drops "on a(n) ... background"
    relation = [r for r in RELATIONS if " %s " % r in noun_part]
    out = {}
    if caption.endswith(" background"):  # "on a red background", "on a red and blue background"
        out["background"] = list(COLOURS).index(caption[len(noun_part):].split()[2])
    if relation:
        first, second = noun_part.split(" %s " % relation[0])
        out["relation"] = RELATIONS.index(relation[0])
        for key, phrase in (("1", first), ("2", second)):
            shape, colour = shape_and_colour(phrase)
            out["shape " + key] = SHAPES.index(shape)
            if colour:
                out["colour " + key] = list(COLOURS).index(colour)
        return out
    position = [p for p in _LONGEST_FIRST if p in caption]
    head = caption
    if position:
        out["position"] = list(POSITIONS).index(position[0])
        head = caption.split(" " + position[0])[0]
    shape, colour = shape_and_colour(head.split(" on a")[0])
    out["shape"] = SHAPES.index(shape)
    if colour:
        out["colour"] = list(COLOURS).index(colour)
    return out
