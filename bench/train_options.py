"""Options for the training step at the main job's size (D = 128), measured in one interleaved run (issue 21 item 5).

    python bench/train_options.py [--repeats 7] [--options eager fused-adamw bf16-autocast compile]
        [--json runs/bench/train_options.json]

Size and step as bench/train_flops.py (DiT small: 4 blocks, D = 128, 4 heads, cond 64; L = 64, C = 1024, ℓ = 2,
batch 32; MDLM NELBO loss; AdamW; one thread). Each option is its own freshly seeded model and optimiser:

- ``eager``: the default (attention already through ``F.scaled_dot_product_attention``; AdamW's default
  multi-tensor ``foreach`` path);
- ``fused-adamw``: ``AdamW(fused=True)`` (one fused kernel for the update of all parameters);
- ``bf16-autocast``: forward and loss under ``torch.autocast("cpu", torch.bfloat16)`` (weights and optimiser in
  fp32); on a CPU without bf16 instructions (AVX2 only) torch emulates it;
- ``compile``: ``torch.compile`` of the backbone (inductor, C++ on the CPU); its compile time is reported apart,
  the step time excludes it (two warm-up steps).

Step time = the best of --repeats steps per option, the options interleaved (o₁, o₂, …, o₁, o₂, …). Achieved
FLOP/s = 3 · `DiT.flops_per_token()` · B · L / step time, divided by an fp32 1024³ matmul's FLOP/s measured before
and after (the larger, which flatters nothing). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from text_bench import matmul_flops, model  # noqa: E402

OPTIONS = ("eager", "fused-adamw", "bf16-autocast", "compile")
BATCH, LENGTH = 32, 64


def make_step(option: str):
    """(step function, model, compile seconds) for one option (module docstring)."""
    from prime_core.diffusion.losses import training_nelbo

    torch.manual_seed(0)
    m = model(2, 128, LENGTH)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True if option == "fused-adamw" else None)
    x = torch.randint(0, m.num_classes, (BATCH, LENGTH), generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(0)
    if option == "compile":
        m.backbone = torch.compile(m.backbone)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=option == "bf16-autocast"):
            loss = training_nelbo(m, x, generator=g).mean() / LENGTH
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    t0 = time.perf_counter()
    step(), step()  # warm-up (and, for compile, the compilation)
    return step, m, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--options", nargs="+", default=list(OPTIONS), choices=OPTIONS)
    ap.add_argument("--json", default="runs/bench/train_options.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    mm = matmul_flops(repeats=5)
    steps, warm, failed = {}, {}, {}
    for option in args.options:
        try:
            steps[option], m, warm[option] = make_step(option)
        except Exception as exc:  # e.g. no C++ compiler for inductor: recorded, not fatal
            failed[option] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    fpt = m.backbone.flops_per_token() if hasattr(m.backbone, "flops_per_token") else \
        m.backbone._orig_mod.flops_per_token()
    best = {o: float("inf") for o in steps}
    for _ in range(args.repeats):
        for option, step in steps.items():
            t0 = time.perf_counter()
            step()
            best[option] = min(best[option], time.perf_counter() - t0)
    mm = max(mm, matmul_flops(repeats=5))
    rows = []
    for option in args.options:
        if option in failed:
            rows.append({"option": option, "error": failed[option]})
            continue
        flops = 3 * fpt * BATCH * LENGTH / best[option]
        rows.append({"option": option, "step_s": best[option], "model_flops_per_s": flops, "mfu": flops / mm,
                     "vs_eager": best["eager"] / best[option] if "eager" in best else None,
                     "warmup_s": warm[option]})
    print(f"DiT small D=128, L={LENGTH}, C=1024, ℓ=2, batch {BATCH}, 1 thread, best of {args.repeats} interleaved; "
          f"fp32 matmul {mm / 1e9:.1f} GFLOP/s; CPU {torch.backends.cpu.get_cpu_capability()}")
    print("| option | step s | model GFLOP/s | achieved / matmul | speed vs eager | warm-up s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['option']} | failed: {r['error']} | | | | |")
            continue
        print(f"| {r['option']} | {r['step_s']:.3f} | {r['model_flops_per_s'] / 1e9:.2f} | {100 * r['mfu']:.1f} % | "
              f"{r['vs_eager']:.2f}× | {r['warmup_s']:.1f} |")
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump({"matmul_flops_per_s": mm, "flops_per_token": fpt, "rows": rows, "torch": torch.__version__,
                   "cpu_capability": torch.backends.cpu.get_cpu_capability()}, fh, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
