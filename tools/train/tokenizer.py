"""A small byte-level BPE vocabulary in CLIP's layout, learned from the caption grammar.

Layout, as CLIP's vocabulary is built: ids 0-255 are the 256 bytes_to_unicode symbols, 256-511
the same symbols with "</w>" (end of word), then one id per merge in merge order, then
<|startoftext|> and <|endoftext|>. merges.txt starts with "#version: 0.2". encode() reproduces
transformers' CLIPTokenizer (without ftfy) for the plain lower-case ASCII text the grammar makes;
Marble's own tokenizer is checked against it in the smoke test.
"""
import json
import os
import re
from collections import Counter

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
PATTERN = re.compile(r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[a-z]+|[0-9]|[^\sa-z0-9]+")


def bytes_to_unicode():
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_SYMBOL = bytes_to_unicode()


def word_symbols(word):
    """A word as CLIP's BPE starts it: one symbol per byte, "</w>" on the last one."""
    syms = [BYTE_SYMBOL[b] for b in word.encode("utf-8")]
    syms[-1] += "</w>"
    return tuple(syms)


def learn_merges(word_counts):
    """Classic BPE: merge the most frequent adjacent pair (ties: the smaller pair) until every
    word is one symbol. Returns the merges in rank order."""
    words = {word_symbols(w): c for w, c in word_counts.items()}
    merges = []
    while True:
        pairs = Counter()
        for syms, c in words.items():
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += c
        if not pairs:
            return merges
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = {}
        for syms, c in words.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            merged[tuple(out)] = c
        words = merged


class Tokenizer:
    def __init__(self, merges, max_length=77):
        base = list(BYTE_SYMBOL.values())
        vocab = base + [s + "</w>" for s in base] + ["".join(m) for m in merges] + [BOS, EOS]
        self.merges = merges
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.encoder = {s: i for i, s in enumerate(vocab)}
        assert len(self.encoder) == len(vocab), "duplicate vocabulary entry"
        self.bos_id, self.eos_id = self.encoder[BOS], self.encoder[EOS]
        self.max_length = max_length

    @property
    def vocab_size(self):
        return len(self.encoder)

    def bpe(self, token):
        word = word_symbols(token)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = tuple(out)
        return word

    def encode(self, text):
        """BOS + at most max_length - 2 tokens + EOS, padded with EOS to max_length (SD 1.x)."""
        ids = []
        for piece in PATTERN.findall(" ".join(text.lower().split())):
            if piece in (BOS, EOS):
                ids.append(self.encoder[piece])
            else:
                ids.extend(self.encoder[s] for s in self.bpe(piece))
        ids = [self.bos_id] + ids[: self.max_length - 2] + [self.eos_id]
        return ids + [self.eos_id] * (self.max_length - len(ids))

    @classmethod
    def load(cls, folder):
        """A tokenizer from the merges.txt that save() wrote (the vocabulary follows from them)."""
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().splitlines()[1:]  # after "#version: 0.2"
        return cls([tuple(line.split()) for line in lines if line])

    def save(self, folder):
        """vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json as
        transformers' CLIPTokenizer.save_pretrained writes them."""
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(self.encoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            for a, b in self.merges:
                f.write(a + " " + b + "\n")
        special = {"content": None, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
        config = {
            "added_tokens_decoder": {
                str(self.bos_id): dict(special, content=BOS, special=True),
                str(self.eos_id): dict(special, content=EOS, special=True),
            },
            "bos_token": BOS,
            "clean_up_tokenization_spaces": True,
            "eos_token": EOS,
            "errors": "replace",
            "model_max_length": self.max_length,
            "pad_token": EOS,
            "tokenizer_class": "CLIPTokenizer",
            "unk_token": EOS,
        }
        write_json(os.path.join(folder, "tokenizer_config.json"), config)
        special_map = {
            "bos_token": dict(special, content=BOS),
            "eos_token": dict(special, content=EOS),
            "pad_token": EOS,
            "unk_token": dict(special, content=EOS),
        }
        write_json(os.path.join(folder, "special_tokens_map.json"), special_map)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n")
