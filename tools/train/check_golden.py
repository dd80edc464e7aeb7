"""Checks models.py against the golden reference: loads the sd15-tiny weights with strict key
matching (so the key names and shapes are exactly diffusers'/transformers') and compares the
outputs of the golden text_encoder / unet / vae cases with the manifest's tolerance rule.

    /usr/bin/python3 tools/train/check_golden.py [GOLDEN_DIR]   (default ../shared/golden)
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402
from export import load_component  # noqa: E402


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    golden = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "..", "..", "shared", "golden")
    if not os.path.isfile(os.path.join(golden, "manifest.json")):
        sys.exit("golden dir not found: " + golden)
    torch.set_num_threads(2)
    model_dir = os.path.join(golden, "models", "sd15-tiny")
    te, _ = load_component(model_dir, "text_encoder", models.CLIPTextModel, "model.safetensors")
    unet, _ = load_component(model_dir, "unet", models.UNet2DConditionModel, "diffusion_pytorch_model.safetensors")
    vae, _ = load_component(model_dir, "vae", models.AutoencoderKL, "diffusion_pytorch_model.safetensors")
    print("strict key match: text_encoder, unet, vae OK")

    manifest = json.load(open(os.path.join(golden, "manifest.json")))
    failed = 0
    for case in manifest["cases"]:
        if case["model"] != "sd15-tiny" or case["weights"] != "fp32":
            continue
        comp = case["component"]
        if comp not in ("text_encoder", "unet", "vae"):
            continue
        t = read_case(os.path.join(golden, case["file"]))
        with torch.no_grad():
            if comp == "text_encoder":
                outs = {"last_hidden_state": te(t["input_ids"].long())}
            elif comp == "unet":
                ts = t["timestep"].float().reshape(-1).expand(t["sample"].shape[0])
                outs = {"out": unet(t["sample"], ts, t["encoder_hidden_states"])}
            elif "image" in t:
                mean, logvar = vae.encode(t["image"])
                outs = {"mean": mean, "std": torch.exp(0.5 * logvar)}
            else:
                outs = {"sample": vae.decode(t["z"])}
        for name, got in outs.items():
            ref = t[name]
            err = (got - ref).abs().max().item()
            tol = case["tolerance"][name]["rel"] * ref.abs().max().item()
            ok = err <= tol
            failed += not ok
            print("%-40s %-18s max|err| %.3e  tol %.3e  %s" % (case["id"], name, err, tol, "ok" if ok else "FAIL"))
    sys.exit(1 if failed else 0)


def read_case(path):
    """Case files hold F32 and I64 tensors."""
    import struct
    import numpy as np
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    kinds = {"F32": np.float32, "I64": np.int64, "F64": np.float64, "I32": np.int32}
    for key, info in header.items():
        if key == "__metadata__" or key.startswith("debug."):
            continue
        a, b = info["data_offsets"]
        out[key] = torch.from_numpy(np.frombuffer(data[a:b], dtype=kinds[info["dtype"]]).reshape(info["shape"]).copy())
    return out


if __name__ == "__main__":
    main()
