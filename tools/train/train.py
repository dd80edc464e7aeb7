"""Trains a tiny text-to-image latent diffusion model (SD 1.x architecture) on procedural shape
images and writes it as a diffusers folder. See README.md.

    /usr/bin/python3 tools/train/train.py --out DIR [--minutes N] [--smoke]
"""
import os

# libgomp's default active spin-wait collapses throughput (10x here) when the 2 cores are shared
# with other processes; passive waiting costs nothing measurable on an idle machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import struct  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import export  # noqa: E402
import models  # noqa: E402
from tokenizer import Tokenizer, learn_merges, write_json  # noqa: E402

# The model, sized for the 2-core budget (README.md has the FLOPs and timings). The UNet's
# 16x16 level has no attention (as SDXL's first level): self-attention over 256 tokens cost 3.4x
# the rest of the training step; layout and text binding happen at 8x8 and in the 4x4 mid block.
VAE = dict(block_out_channels=[16, 32, 64], layers_per_block=1, norm_num_groups=8)
TEXT = dict(hidden=64, layers=3, heads=4)
UNET = dict(block_out_channels=[32, 64, 64], layers_per_block=2, heads=4, groups=16, cross=[False, True, False])

PREVIEW_PROMPTS = [
    "a red circle above a blue square",
    "a large yellow star on a black background",
    "a small green triangle in the top left corner",
    "a pink heart to the left of a white diamond on a blue background",
    "a blue square in the center on a red and yellow background",
    "an orange circle below a purple star",
    "a large white heart on a green background",
    "a black diamond next to a small red circle on a white background",
]


class Budget:
    """Training progress in [0, 1]: the larger of steps done / step cap and time spent / time cap,
    so a run stops at whichever limit comes first (steps: reproducible; time: a safety net)."""

    def __init__(self, steps, seconds):
        self.steps, self.seconds, self.start, self.step = steps, seconds, time.time(), 0
        self.cpu_start = time.process_time()

    def elapsed(self):
        return time.time() - self.start

    def cpu(self):
        """CPU seconds of this process: about 2x the wall time on an idle 2-core machine."""
        return time.process_time() - self.cpu_start

    def progress(self):
        return max(self.step / self.steps, self.elapsed() / self.seconds)

    def done(self):
        return self.progress() >= 1.0


def lr_at(p, peak, warmup=0.03, floor=0.1):
    """Linear warm-up, then cosine decay to floor * peak."""
    if p < warmup:
        return peak * p / warmup
    q = min(1.0, (p - warmup) / (1 - warmup))
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * q)))


def set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = lr


def log(fh, msg):
    print(msg, flush=True)
    fh.write(msg + "\n")
    fh.flush()


# ----------------------------------------------------------------------------- stage 1: VAE


def vae_cfg():
    return export.vae_config(VAE["block_out_channels"], VAE["layers_per_block"], VAE["norm_num_groups"],
                             data.SIZE, 1.0)


def train_vae(args, rng, fh, history):
    vae = models.AutoencoderKL(vae_cfg())
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    budget = Budget(args.vae_steps, args.minutes * 60 * (1.0 if args.vae_only else 0.25))
    window, t_log, c_log = [], time.time(), time.process_time()
    crop = data.SIZE // 2
    while not budget.done():
        p = budget.progress()
        set_lr(opt, lr_at(p, args.vae_lr))
        # Most steps see random 32x32 crops (4x cheaper per sample, convolutions do not care);
        # the last quarter sees whole images so the mid-block attention learns the 16x16 grid.
        whole = p >= 0.75
        x, _ = data.batch(rng, args.vae_batch // 4 if whole else args.vae_batch)
        if not whole:
            offs = rng.integers(0, (data.SIZE - crop) // 4 + 1, size=(len(x), 2)) * 4
            x = np.stack([im[:, oy:oy + crop, ox:ox + crop] for im, (oy, ox) in zip(x, offs)])
        x = torch.from_numpy(x)
        mean, logvar = vae.encode(x)
        z = mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)
        rec = vae.decode(z)
        l1 = (rec - x).abs().mean()
        l2 = ((rec - x) ** 2).mean()
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).mean()
        loss = l1 + l2 + args.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        budget.step += 1
        window.append((l1.item(), l2.item(), kl.item()))
        if budget.step % args.log_every == 0 or budget.done():
            a = np.mean(window, axis=0)
            psnr = 10 * math.log10(4.0 / max(a[1], 1e-12))  # images span [-1, 1]
            dt, dc = (time.time() - t_log) / len(window), (time.process_time() - c_log) / len(window)
            log(fh, "vae step %5d  p %.3f  lr %.2e  l1 %.4f  l2 %.5f  psnr %.1f dB  kl %.1f  %s  %.2f s/step (cpu %.2f s)"
                % (budget.step, p, opt.param_groups[0]["lr"], a[0], a[1], psnr, a[2], "64px" if whole else "32px",
                   dt, dc))
            history.append(dict(stage="vae", step=budget.step, l1=float(a[0]), l2=float(a[1]), psnr=psnr,
                                kl=float(a[2]), sec_per_step=dt, cpu_per_step=dc, elapsed=budget.elapsed()))
            window, t_log, c_log = [], time.time(), time.process_time()
    log(fh, "vae: %d steps in %.1f min, %.1f cpu-min (%s limit)" % (
        budget.step, budget.elapsed() / 60, budget.cpu() / 60, "step" if budget.step >= budget.steps else "time"))
    return vae.eval()


@torch.no_grad()
def scaling_factor(vae, rng, n=512):
    """1 / std of sampled latents, as SD's 0.18215 was chosen; 5 significant digits."""
    zs = []
    for i in range(0, n, 64):
        x, _ = data.batch(rng, 64)
        mean, logvar = vae.encode(torch.from_numpy(x))
        zs.append(mean + torch.exp(0.5 * logvar) * torch.randn_like(mean))
    z = torch.cat(zs)
    return float("%.5g" % (1.0 / z.std().item())), z


# ----------------------------------------------------------------------------- stage 2: UNet + text encoder


@torch.no_grad()
def encode_pool(vae, tok, rng, n, seconds, fh):
    """n images (or as many as fit in the time) as latent Gaussians (mean, std) and token ids,
    reused across epochs; the latent is re-sampled every time an image is drawn."""
    means, stds, ids, start = [], [], [], time.time()
    while sum(len(m) for m in means) < n and (not means or time.time() - start < seconds):
        x, caps = data.batch(rng, 64)
        mean, logvar = vae.encode(torch.from_numpy(x))
        means.append(mean.contiguous())
        stds.append(torch.exp(0.5 * logvar).contiguous())
        ids.append(torch.tensor([tok.encode(c) for c in caps]))
    pool = torch.cat(means), torch.cat(stds), torch.cat(ids)
    log(fh, "pool: %d images encoded in %.1f min" % (len(pool[0]), (time.time() - start) / 60))
    return pool


def alphas_cumprod():
    """scaled_linear betas 0.00085..0.012 over 1000 steps, as the scheduler config says."""
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1 - betas, 0).float()


def build_stage2(tok):
    te_cfg = export.text_encoder_config(tok.vocab_size, TEXT["hidden"], TEXT["layers"], TEXT["heads"],
                                        tok.bos_id, tok.eos_id)
    latent = data.SIZE // 2 ** (len(VAE["block_out_channels"]) - 1)
    unet_cfg = export.unet_config(UNET["block_out_channels"], UNET["layers_per_block"], UNET["heads"],
                                  TEXT["hidden"], UNET["groups"], latent, UNET["cross"])
    te = models.CLIPTextModel(te_cfg)
    # transformers' CLIP initialisation for the embeddings (PyTorch's default N(0, 1) is far too large).
    torch.nn.init.normal_(te.text_model.embeddings.token_embedding.weight, std=0.02)
    torch.nn.init.normal_(te.text_model.embeddings.position_embedding.weight, std=0.01)
    unet = models.UNet2DConditionModel(unet_cfg)
    return te, te_cfg, unet, unet_cfg


def train_unet(args, te, unet, pool, scaling, empty_ids, seconds, log_path):
    """Stage 2 as two single-thread processes that average their gradients every step (gloo):
    PyTorch keeps only ~1.4 of the 2 cores busy in one process at these sizes; two processes of
    batch 32 trained 56 samples/s where one 2-thread process of batch 32 trained 33. te and
    unet are shared-memory modules; rank 0 writes the EMA weights back into them at the end."""
    port = _free_port()
    history = torch.multiprocessing.get_context("spawn").Manager().list()
    for m in (te, unet):
        m.share_memory()
    torch.multiprocessing.spawn(_train_unet_rank, nprocs=args.world,
                                args=(args, te, unet, pool, scaling, empty_ids, seconds, log_path, port, history))
    return te.eval(), unet.eval(), list(history)


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_unet_rank(rank, args, te_shared, unet_shared, pool, scaling, empty_ids, seconds, log_path, port, history):
    import copy
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=args.world)
    fh = open(log_path, "a") if rank == 0 else None
    te, unet = copy.deepcopy(te_shared).train(), copy.deepcopy(unet_shared).train()
    means, stds, ids = pool
    params = list(unet.parameters()) + list(te.parameters())
    ema = [p.detach().clone() for p in params] if rank == 0 else None
    opt = torch.optim.AdamW(params, lr=args.unet_lr, betas=(0.9, 0.999), weight_decay=0.01)
    ac = alphas_cumprod()
    gen = torch.Generator().manual_seed(args.seed + 2 + 1000 * rank)  # each rank draws its own samples
    budget = Budget(args.unet_steps, seconds)
    flat = torch.zeros(sum(p.numel() for p in params) + 2)  # all gradients, then loss and mse
    window, t_log, c_log = [], time.time(), time.process_time()
    while True:
        # Ranks agree on progress (rank 0's clock), so they take the same number of steps and
        # the same learning rates.
        p = torch.tensor([budget.progress() if rank == 0 else 0.0])
        dist.broadcast(p, 0)
        p = p.item()
        if p >= 1.0:
            break
        set_lr(opt, lr_at(p, args.unet_lr))
        bs = args.unet_batch
        idx = torch.randint(0, len(means), (bs,), generator=gen)
        z0 = (means[idx] + stds[idx] * torch.randn(means[idx].shape, generator=gen)) * scaling
        tokens = ids[idx].clone()
        drop = torch.rand(bs, generator=gen) < args.uncond_prob  # classifier-free guidance: "" captions
        tokens[drop] = empty_ids
        t = torch.randint(0, 1000, (bs,), generator=gen)
        noise = torch.randn(z0.shape, generator=gen)
        # Offset noise: a per-channel constant lets an epsilon model move an image's mean colour,
        # which plain Gaussian noise at SD's terminal SNR leaves nearly fixed (flat backgrounds).
        noise = noise + args.offset_noise * torch.randn((bs, z0.shape[1], 1, 1), generator=gen)
        a = ac[t][:, None, None, None]
        xt = (a.sqrt() * z0 + (1 - a).sqrt() * noise)
        pred = unet(xt, t, te(tokens))
        snr = ac[t] / (1 - ac[t])
        weight = torch.clamp(snr, max=args.min_snr) / snr  # min-SNR-gamma weighting, epsilon target
        per = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
        loss = (weight * per).mean()
        opt.zero_grad(set_to_none=False)
        loss.backward()
        torch.cat([q.grad.reshape(-1) for q in params] + [loss.detach()[None], per.mean().detach()[None]], out=flat)
        dist.all_reduce(flat)
        flat /= args.world
        offset = 0
        for q in params:
            q.grad.copy_(flat[offset:offset + q.numel()].view_as(q))
            offset += q.numel()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        budget.step += 1
        if rank != 0:
            continue
        decay = min(args.ema, (1 + budget.step) / (10 + budget.step))
        with torch.no_grad():
            for e, q in zip(ema, params):
                e.mul_(decay).add_(q.detach(), alpha=1 - decay)
        window.append((flat[-2].item(), flat[-1].item()))
        if budget.step % args.log_every == 0:
            a_ = np.mean(window, axis=0)
            dt, dc = (time.time() - t_log) / len(window), (time.process_time() - c_log) / len(window)
            log(fh, "unet step %5d  p %.3f  lr %.2e  loss %.4f  mse %.4f  %.2f s/step (rank 0 cpu %.2f s)"
                % (budget.step, p, opt.param_groups[0]["lr"], a_[0], a_[1], dt, dc))
            history.append(dict(stage="unet", step=budget.step, loss=float(a_[0]), mse=float(a_[1]),
                                sec_per_step=dt, cpu_per_step=dc, elapsed=budget.elapsed()))
            window, t_log, c_log = [], time.time(), time.process_time()
    if rank == 0:
        log(fh, "unet: %d steps of %d x %d samples in %.1f min (%s limit)" % (
            budget.step, args.world, args.unet_batch, budget.elapsed() / 60,
            "step" if budget.step >= budget.steps else "time"))
        with torch.no_grad():
            shared = list(unet_shared.parameters()) + list(te_shared.parameters())
            for e, q in zip(ema, shared):
                q.copy_(e)
        fh.close()
    dist.destroy_process_group()


# ----------------------------------------------------------------------------- preview


@torch.no_grad()
def reconstructions(vae, rng, path, n=8):
    """Top row: fresh images; bottom row: their VAE round trips (mean latents)."""
    x, _ = data.batch(rng, n)
    x = torch.from_numpy(x)
    rec = vae.decode(vae.encode(x)[0])
    rows = [((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy() for t in (x, rec)]
    write_png(path, np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0))


@torch.no_grad()
def preview(te, unet, vae, tok, scaling, path, seed, steps=25, guidance=7.5):
    """DDIM (eta 0) samples of PREVIEW_PROMPTS with classifier-free guidance, as a PNG strip."""
    ac = alphas_cumprod()
    gen = torch.Generator().manual_seed(seed)
    n = len(PREVIEW_PROMPTS)
    cond = te(torch.tensor([tok.encode(p) for p in PREVIEW_PROMPTS]))
    uncond = te(torch.tensor([tok.encode("")] * n))
    ctx = torch.cat([uncond, cond])
    side = data.SIZE // 2 ** (len(VAE["block_out_channels"]) - 1)
    x = torch.randn((n, 4, side, side), generator=gen)
    ts = list(range(0, 1000, 1000 // steps))[::-1]
    for i, t in enumerate(ts):
        eps = unet(torch.cat([x, x]), torch.full((2 * n,), t), ctx)
        eu, ec = eps.chunk(2)
        eps = eu + guidance * (ec - eu)
        a = ac[t]
        a_prev = ac[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0)
        x0 = (x - (1 - a).sqrt() * eps) / a.sqrt()
        x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
    img = vae.decode((x / scaling))
    img = ((img.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()  # [n, H, W, 3]
    write_png(path, np.concatenate(list(img), axis=1))


def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output diffusers folder")
    ap.add_argument("--minutes", type=float, default=120.0,
                    help="wall-clock cap for the whole run (VAE 25%%, latent pool 10%%, UNet the rest)")
    ap.add_argument("--smoke", action="store_true", help="a few steps of everything (plumbing check)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--vae-from", help="reuse the vae/ of an earlier output folder instead of stage 1")
    ap.add_argument("--vae-only", action="store_true", help="stop after stage 1 (the VAE gets all the minutes)")
    ap.add_argument("--vae-steps", type=int, default=3000)
    ap.add_argument("--vae-batch", type=int, default=32)
    ap.add_argument("--vae-lr", type=float, default=1e-3)
    ap.add_argument("--kl-weight", type=float, default=1e-5)
    ap.add_argument("--pool", type=int, default=20000, help="images in the latent pool of stage 2")
    ap.add_argument("--unet-steps", type=int, default=6000)
    ap.add_argument("--unet-batch", type=int, default=32, help="per process")
    ap.add_argument("--world", type=int, default=2, help="processes of stage 2 (one thread each)")
    ap.add_argument("--unet-lr", type=float, default=7e-4)
    ap.add_argument("--offset-noise", type=float, default=0.1)
    ap.add_argument("--uncond-prob", type=float, default=0.1)
    ap.add_argument("--min-snr", type=float, default=5.0)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--log-every", type=int, default=50)
    args = ap.parse_args()
    if args.smoke:
        args.vae_steps, args.unet_steps, args.pool, args.log_every = 20, 20, 256, 5

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    os.makedirs(args.out, exist_ok=True)
    # Append mode: stage 2's rank 0 appends to the same log from its own process.
    open(os.path.join(args.out, "train_log.txt"), "w").close()
    fh = open(os.path.join(args.out, "train_log.txt"), "a")
    log(fh, "args: " + json.dumps(vars(args), sort_keys=True))
    history, t0 = [], time.time()

    # 0. tokenizer: BPE merges learned from the grammar's word frequencies
    tok = Tokenizer(learn_merges(data.word_counts(np.random.default_rng(args.seed + 1))))
    tok.save(os.path.join(args.out, "tokenizer"))
    export.save_static(args.out)
    log(fh, "tokenizer: %d merges, vocabulary %d" % (len(tok.merges), tok.vocab_size))

    # 1. VAE
    if args.vae_from:
        vae = models.AutoencoderKL(vae_cfg())
        vae.load_state_dict(export.read_safetensors(
            os.path.join(args.vae_from, "vae", "diffusion_pytorch_model.safetensors")))
        vae = vae.eval()
        log(fh, "vae: loaded from " + args.vae_from)
    else:
        vae = train_vae(args, rng, fh, history)
    scaling, z = scaling_factor(vae, rng)
    log(fh, "latents: mean %.3f std %.3f -> scaling_factor %s" % (z.mean().item(), z.std().item(), scaling))
    vcfg = vae_cfg()
    vcfg["scaling_factor"] = scaling
    export.save_component(args.out, "vae", vcfg, vae.state_dict(), "diffusion_pytorch_model.safetensors")
    reconstructions(vae, rng, os.path.join(args.out, "train_vae_preview.png"))
    if args.vae_only:
        log(fh, "done in %.1f min (VAE only)" % ((time.time() - t0) / 60))
        write_json(os.path.join(args.out, "train_history.json"), history)
        return

    # 2. text encoder + UNet
    pool = encode_pool(vae, tok, rng, args.pool, args.minutes * 60 * 0.10, fh)
    te, te_cfg, unet, unet_cfg = build_stage2(tok)
    empty = torch.tensor(tok.encode(""))
    # The UNet gets what is left of --minutes, less ~45 s for saving and the preview.
    left = args.minutes * 60 - (time.time() - t0) - 45
    te, unet, h2 = train_unet(args, te, unet, pool, scaling, empty, max(left, 60.0), fh.name)
    history += h2
    export.save_component(args.out, "text_encoder", te_cfg, te.state_dict(), "model.safetensors")
    export.save_component(args.out, "unet", unet_cfg, unet.state_dict(), "diffusion_pytorch_model.safetensors")

    counts = {name: sum(p.numel() for p in m.parameters()) for name, m in
              (("vae", vae), ("text_encoder", te), ("unet", unet))}
    preview(te, unet, vae, tok, scaling, os.path.join(args.out, "train_preview.png"), args.seed)
    log(fh, "parameters: " + json.dumps(counts) + "; preview prompts: " + json.dumps(PREVIEW_PROMPTS))
    log(fh, "done in %.1f min" % ((time.time() - t0) / 60))
    write_json(os.path.join(args.out, "train_history.json"), history)


if __name__ == "__main__":
    main()
