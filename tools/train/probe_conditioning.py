"""Which caption words does a trained model use? For one-shape training images that name a
position and a background, compare the UNet's epsilon loss at fixed t, with the same noise,
under four captions: the true one, its position phrase swapped, its shape colour swapped, and "".
A word the model uses raises the loss when it is wrong; one it ignores leaves the loss unchanged.

    /usr/bin/python3 tools/train/probe_conditioning.py MODEL_DIR [--images 192]

About 35 s on 2 cores. Reads the model's own tokenizer/merges.txt, so it works for any run.
"""
import argparse
import os

import numpy as np
import torch

import data
import models
from export import load_component
from tokenizer import Tokenizer
from train import alphas_cumprod


def probe_set(rng, n):
    """n one-shape images with a position and a background; their captions and three variants."""
    positions, colours = list(data.POSITIONS), list(data.COLOURS)
    images, captions = [], dict(true=[], wrong_position=[], wrong_colour=[], empty=[])
    while len(images) < n:
        image, caption = data.sample(rng)
        parts = data.caption_parts(caption)
        if not {"position", "background", "colour"} <= parts.keys():
            continue
        position, colour = positions[parts["position"]], colours[parts["colour"]]
        other_position = rng.choice([p for p in positions if p != position])
        other_colour = rng.choice([c for c in colours if c != colour])
        images.append(image)
        captions["true"].append(caption)
        captions["wrong_position"].append(caption.replace(position, other_position))
        # The shape's colour comes before the background's, so the first match is the shape's.
        captions["wrong_colour"].append(caption.replace(" %s " % colour, " %s " % other_colour, 1))
        captions["empty"].append("")
    x = torch.from_numpy(np.stack(images).astype(np.float32).transpose(0, 3, 1, 2) / 127.5 - 1)
    return x, captions


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--images", type=int, default=192)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(2)
    te, _ = load_component(args.model, "text_encoder", models.CLIPTextModel, "model.safetensors")
    unet, _ = load_component(args.model, "unet", models.UNet2DConditionModel, "diffusion_pytorch_model.safetensors")
    vae, vae_cfg = load_component(args.model, "vae", models.AutoencoderKL, "diffusion_pytorch_model.safetensors")
    tok = Tokenizer.load(os.path.join(args.model, "tokenizer"))
    x, captions = probe_set(np.random.default_rng(args.seed), args.images)
    z0 = vae.encode(x)[0] * vae_cfg["scaling_factor"]  # the latent mean, as the training pool's
    contexts = {k: te(torch.tensor([tok.encode(c) for c in v])) for k, v in captions.items()}
    ac = alphas_cumprod()
    gen = torch.Generator().manual_seed(0)
    print("t     " + "  ".join("%14s" % k for k in contexts))
    for t in (300, 500, 700, 900, 990):
        noise = torch.randn(z0.shape, generator=gen)
        xt = ac[t].sqrt() * z0 + (1 - ac[t]).sqrt() * noise
        steps = torch.full((len(x),), t)
        losses = [((unet(xt, steps, c) - noise) ** 2).mean().item() for c in contexts.values()]
        print("%-5d " % t + "  ".join("%14.4f" % v for v in losses), flush=True)
    print("e.g. %r / %r / %r" % (captions["true"][0], captions["wrong_position"][0], captions["wrong_colour"][0]))


if __name__ == "__main__":
    main()
