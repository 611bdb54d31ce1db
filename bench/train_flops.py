"""A training step's achieved FLOP/s vs the fp32 matmul FLOP/s measured in the same run, at the main job's size.

    python bench/train_flops.py [--label after] [--repeats 5] [--json runs/train-flops-after.json]

Size = configs/main.toml: DiT small (4 blocks, D = 128, 4 heads, cond 64), L = 64, C = 1024, ℓ = 2, batch 32,
carry-over head, MDLM NELBO training loss, AdamW. Model FLOPs per token = `DiT.flops_per_token()` (matmuls incl.
QKᵀ and A·V, the C-way head, adaLN); a training step counts 3× (forward + backward). Reference: an fp32 1024³
matmul, timed before and after the training step (best of repeats each; the larger is used, which flatters
nothing). One thread (`torch.set_num_threads(1)`): on this shared 2-core machine 2-thread timings swing by up to
10×. Reuses bench/text_bench.py's step and timer, so the numbers are comparable with docs/benchmarks.md §1.
"""

from __future__ import annotations

import argparse
import json

import torch

import prime_core
from text_bench import matmul_flops, training


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    mm_before = matmul_flops(repeats=args.repeats)
    row = training(32, 64, args.repeats, foreach=None)
    mm = max(mm_before, matmul_flops(repeats=args.repeats))
    row.update(code=args.label, matmul_flops_per_s=mm, mfu=row["model_flops_per_s"] / mm)
    print(f"prime_core from {prime_core.__file__}")
    print("| code | step s | tokens/s | model GFLOP/s | fp32 matmul GFLOP/s | achieved / matmul |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.label} | {row['step_s']:.3f} | {row['tokens_per_s']:.0f} | {row['model_flops_per_s'] / 1e9:.2f} "
          f"| {mm / 1e9:.1f} | {100 * row['mfu']:.1f} % |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(row, fh, indent=1)


if __name__ == "__main__":
    main()
