"""Training-step cost of block diffusion vs today's one-block model, the main job's shapes.

    python bench/block_train_step.py [--blocks 4 16] [--repeats 3] [--json runs/block-train-step.json]

Model: the main job's (DiT small: 4 blocks, D = 128, 4 heads, cond 64; C = 4096, ℓ = 2, L = 64, carry-over head,
log-linear schedule), random weights, batch 32 × 64 tokens, the joint loss (`train.loss` of the main job), forward
+ backward, one thread. A block model runs [y_t ; x₀] (2L positions) under the block mask; B = L is the plain
model. Steps are interleaved (each repeat runs every B once) and the best of --repeats kept; prints a table with
the ratio to B = L and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from prime_core import Config, ModelConfig, build_model
from prime_core.losses import joint_loss


def model(block: int | None):
    cfg = Config(model=ModelConfig(num_classes=4096, length=64, ell=2, width=128, backbone="dit",
                                   backbone_options={"preset": "small", "heads": 4, "cond_dim": 64},
                                   block_size=block, schedule="loglinear"))
    torch.manual_seed(0)
    return build_model(cfg).train()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = {b: model(b if b < 64 else None) for b in [*args.blocks, 64]}
    tokens = torch.randint(0, 4096, (32, 64), generator=torch.Generator().manual_seed(0))
    best = {b: float("inf") for b in models}
    for _ in range(args.repeats):
        for b, m in models.items():
            m.zero_grad()
            t0 = time.perf_counter()
            joint_loss(m, tokens, generator=torch.Generator().manual_seed(1)).mean().backward()
            best[b] = min(best[b], time.perf_counter() - t0)
    rows = [{"block_size": b, "seconds": s, "vs_one_block": s / best[64]} for b, s in best.items()]
    print(f"training step (joint loss, forward + backward), batch 32 × L 64, DiT small, C = 4096, ℓ = 2, 1 thread, "
          f"best of {args.repeats} interleaved")
    print("| B | s/step | × one block (B = L = 64) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['block_size']} | {r['seconds']:.3f} | {r['vs_one_block']:.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
