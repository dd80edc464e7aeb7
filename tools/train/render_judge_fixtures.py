"""Writes the judge's ground-truth fixtures: true renders of the training data generator with
their captions, for runtime's JudgeTest (which must not need Python).

    /usr/bin/python3 tools/train/render_judge_fixtures.py [--out test-data/judge] [--count 96]

Output: OUT/NNN.png (64x64 RGB, 8-bit) and OUT/captions.json ([{"file", "caption"}], in order).
The draw is seeded, so running it again writes the same files. It stops with an error if the set
misses a colour, shape, position, relation, size or background kind: the judge test is only as
good as its coverage.
"""
import argparse
import json
import os
import struct
import zlib

import numpy as np

import data


def png_bytes(rgb):
    """A minimal 8-bit RGB PNG (no ancillary chunks, so the bytes depend only on the pixels)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, payload):
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def coverage_gaps(captions):
    """Grammar parts that no caption uses."""
    text = " | ".join(captions)
    wanted = list(data.COLOURS) + data.SHAPES + list(data.SIZES) + list(data.POSITIONS)
    wanted += [" %s a" % r for r in data.RELATIONS]  # " above a" also matches " above an"
    gaps = [w for w in wanted if w not in text]
    if not any(" and " in c for c in captions):
        gaps.append("two-tone background")
    return gaps


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "test-data", "judge"))
    ap.add_argument("--count", type=int, default=96)
    ap.add_argument("--seed", type=int, default=20261129)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    samples = [data.sample(rng) for _ in range(args.count)]
    gaps = coverage_gaps([c for _, c in samples])
    if gaps:
        raise SystemExit("fixtures miss %s; try another --seed or a larger --count" % gaps)
    os.makedirs(args.out, exist_ok=True)
    index = []
    for i, (img, caption) in enumerate(samples):
        name = "%03d.png" % i
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(png_bytes(img))
        index.append({"file": name, "caption": caption})
    with open(os.path.join(args.out, "captions.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    print("wrote %d fixtures to %s" % (len(index), os.path.normpath(args.out)))


if __name__ == "__main__":
    main()
