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

import torch
from _common import best_of_interleaved, main_job_dit, write_json

from prime_core.api import build_training_loss

joint_loss = build_training_loss("joint")  # the main job's train.loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = {b: main_job_dit(block=b if b < 64 else None).train() for b in [*args.blocks, 64]}
    tokens = torch.randint(0, 4096, (32, 64), generator=torch.Generator().manual_seed(0))

    def step(m):
        m.zero_grad(set_to_none=True)  # drops the gradients (no work), so timing it with the step changes nothing
        joint_loss(m, tokens, generator=torch.Generator().manual_seed(1)).mean().backward()

    best, _ = best_of_interleaved({b: (lambda m=m: step(m)) for b, m in models.items()}, args.repeats)
    rows = [{"block_size": b, "seconds": s, "vs_one_block": s / best[64]} for b, s in best.items()]
    print(f"training step (joint loss, forward + backward), batch 32 × L 64, DiT small, C = 4096, ℓ = 2, 1 thread, "
          f"best of {args.repeats} interleaved")
    print("| B | s/step | × one block (B = L = 64) |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['block_size']} | {r['seconds']:.3f} | {r['vs_one_block']:.2f} |")
    write_json(args.json, {"rows": rows})


if __name__ == "__main__":
    main()
