"""DiT training throughput and model-FLOPs utilisation (MFU) on one device, on synthetic tokens.

The paper's text setup (DESIGN §2.8): DiT 12 × 768 ("dit" preset base), L = 1024, the GPT-2 vocabulary
C = 50257, ℓ = 2 (b = 225), carry-over head, prime's training NELBO (a training objective), AdamW, bf16 autocast on
CUDA. Tokens are uniform random ids (only speed is measured).

    tokens/s = B · L · steps / seconds        (after --warmup steps, synchronised)
    MFU      = 3 · flops_per_token · tokens/s / peak   (forward + backward ≈ 3 × the backbone's forward FLOPs,
               `DiT.flops_per_token`; peak = the device's dense bf16 FLOP/s, --peak-tflops or a known GPU's)

    python bench/gpu_dit_mfu.py --device cuda --steps 40 --json out.json
    python bench/gpu_dit_mfu.py --device cpu --tiny          (a few seconds: the code path, no meaningful MFU)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

import torch

#: Dense bf16 peak FLOP/s (no sparsity) by a substring of torch.cuda.get_device_name().
PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)


def build(args, device):
    from prime_core.api import build_model, load_config

    if args.tiny:
        sizes = ["model.num_classes=300", "model.length=32", "model.width=64",
                 'model.backbone_options={ preset = "tiny" }']
    else:
        sizes = [f"model.num_classes={args.num_classes}", f"model.length={args.length}", "model.width=768",
                 'model.backbone_options={ preset = "base" }']
    config = load_config(None, ['model.backbone="dit"', "model.ell=2", 'model.head="carry-over"', *sizes])
    torch.manual_seed(0)
    return build_model(config).to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(args) -> dict:
    from prime_core.api import resolve_device
    from prime_core.diffusion.losses import training_nelbo

    device = resolve_device(args.device)
    model = build(args, device).train()
    batch, steps = (2, 3) if args.tiny else (args.batch_size, args.steps)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    bf16 = device.type == "cuda" and not args.fp32
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(model.num_classes, (batch, model.length), generator=g).to(device)
    losses = []

    def step():
        with autocast:
            loss = training_nelbo(model, tokens, generator=g).mean() / model.length
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.detach())

    for _ in range(1 if args.tiny else args.warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = time.perf_counter() - t0
    rate = batch * model.length * steps / seconds
    fpt = model.backbone.flops_per_token()
    peak = peak_flops(device, args.peak_tflops)
    return {"device": str(device), "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "bf16_autocast": bf16, "depth": model.backbone.config.depth, "width": model.backbone.spec.width,
            "length": model.length, "num_classes": model.num_classes, "ell": model.ell, "batch_size": batch,
            "steps": steps, "seconds": seconds, "tokens_per_s": rate, "flops_per_token_forward": fpt,
            "achieved_tflops": 3 * fpt * rate / 1e12, "peak_tflops": None if peak is None else peak / 1e12,
            "mfu": None if peak is None else 3 * fpt * rate / peak,
            "last_loss (training NELBO, an objective)": float(losses[-1]),
            "max_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--num-classes", type=int, default=50257)
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    p.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, TFLOP/s (else a known GPU's)")
    p.add_argument("--tiny", action="store_true", help="2 layers × 64, L = 32, C = 300, 3 steps: checks the code path")
    p.add_argument("--json")
    args = p.parse_args(argv)
    rep = run(args)
    mfu = "n/a (peak unknown)" if rep["mfu"] is None else f"{100 * rep['mfu']:.1f} %"
    print(f"DiT {rep['depth']}×{rep['width']}, L={rep['length']}, C={rep['num_classes']}, ℓ={rep['ell']}, "
          f"batch {rep['batch_size']} on {rep['name']} ({'bf16 autocast' if rep['bf16_autocast'] else 'fp32'}): "
          f"{rep['tokens_per_s']:,.0f} training tokens/s, {rep['achieved_tflops']:.1f} TFLOP/s, MFU {mfu}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rep, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
