"""What do a text encoder's hidden states still say about the caption? Linear probes: for 3000
captions of data.py, a softmax classifier per caption part (shape, position, relation, ...) on one
hidden-state vector (the EOS token's, or the mean over all 77), fitted on 80 % and scored on the
other 20 %. A part the UNet could read by cross-attention scores near 100 %; chance is 1 / classes.

    /usr/bin/python3 tools/train/probe_text_encoder.py MODEL_DIR
    /usr/bin/python3 tools/train/probe_text_encoder.py --init     # the recipe's untrained encoder

About 20-40 s on 2 cores.
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F

import data
import models
from export import load_component
from tokenizer import Tokenizer, learn_merges


def probe(x, y, train_fraction=0.8):
    """Test accuracy of an L2-regularised softmax classifier x [N, D] -> y [N]."""
    n = int(len(x) * train_fraction)
    x = (x - x[:n].mean(0)) / (x[:n].std(0) + 1e-6)
    w = torch.zeros(x.shape[1], int(y.max()) + 1, requires_grad=True)
    b = torch.zeros(w.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300)

    def loss():
        opt.zero_grad()
        value = F.cross_entropy(x[:n] @ w + b, y[:n]) + 1e-4 * (w ** 2).sum()
        value.backward()
        return value

    opt.step(loss)
    with torch.no_grad():
        return ((x[n:] @ w + b).argmax(1) == y[n:]).float().mean().item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", nargs="?")
    ap.add_argument("--init", action="store_true", help="probe a freshly initialised encoder instead")
    ap.add_argument("--captions", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    if bool(args.model) == args.init:
        ap.error("give MODEL_DIR or --init")
    torch.set_num_threads(2)
    if args.init:
        import train  # the recipe's configuration and initialisation
        torch.manual_seed(args.seed)
        tok = Tokenizer(learn_merges(data.word_counts(np.random.default_rng(args.seed))))
        te = train.build_stage2(tok)[0].eval()
    else:
        te, _ = load_component(args.model, "text_encoder", models.CLIPTextModel, "model.safetensors")
        tok = Tokenizer.load(os.path.join(args.model, "tokenizer"))
    rng = np.random.default_rng(args.seed)
    captions = [data.sample(rng)[1] for _ in range(args.captions)]
    ids = torch.tensor([tok.encode(c) for c in captions])
    with torch.no_grad():
        hidden = te(ids)  # [N, 77, hidden]
    eos = hidden[torch.arange(len(ids)), (ids == tok.eos_id).int().argmax(dim=1)]
    features = {"EOS state": eos, "mean of 77": hidden.mean(dim=1)}
    parts = [data.caption_parts(c) for c in captions]
    print("%-10s %8s %8s  %s" % ("part", "captions", "classes", "  ".join("%11s" % f for f in features)))
    for name in data.PARTS:
        rows = [i for i, p in enumerate(parts) if name in p]
        y = torch.tensor([parts[i][name] for i in rows])
        scores = [probe(f[rows], y) for f in features.values()]
        print("%-10s %8d %8d  %s" % (name, len(rows), int(y.max()) + 1,
                                      "  ".join("%10.1f%%" % (100 * s) for s in scores)))


if __name__ == "__main__":
    main()
