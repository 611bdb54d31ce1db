"""Peak memory of the decoder head + training loss per training step, in logits-sized buffers.

    python bench/head_memory.py [--label after] [--json runs/head-memory-after.json]

Size = configs/main.toml: C = 1024, ℓ = 2 (b = 32), L = 64, batch 32, carry-over head, loss "nelbo" (MDLM's
training NELBO over the L·ℓ sub-tokens, per-digit marginals); the joint loss is measured too. One buffer = the
logits [B, L, C] in fp32 = 8 MiB here.

What is measured: the backbone is replaced by a fixed logits tensor (a leaf with requires_grad), so the region is
exactly head + loss: forward (restriction to V(y_t), log-softmax, marginals, the loss) and backward down to the
logits' gradient (which is counted: 1 buffer that any step needs). Memory accounting: torch.profiler with
profile_memory=True on CPU records every allocation and free of the region; the peak of their running sum (bytes
live above the start of the region) divided by the buffer size is the number reported. No CUDA needed; CPU
allocations of the same ops have the same sizes.
"""

from __future__ import annotations

import argparse
import json

import torch
from torch.profiler import ProfilerActivity, profile

import prime_core
from prime_core import BackboneSpec, BaseBMap, PrimeModel
from prime_core.diffusion.heads import CarryOverHead
from prime_core.diffusion.losses import joint_loss, training_nelbo
from prime_core.diffusion.schedules import LogLinearSchedule
from prime_core.interfaces import Backbone


class FixedLogits(Backbone):
    """Returns the logits it holds, whatever the input: isolates the head and the loss."""

    def __init__(self, spec, logits):
        super().__init__(spec)
        self.logits = logits

    def forward(self, y, t=None):
        return self.logits


def peak_buffers(loss_fn, batch: int, length: int, c: int, ell: int) -> float:
    spec = BackboneSpec(out_dim=c, base=BaseBMap(c, ell).base, ell=ell, length=length, width=128, num_classes=c)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(batch, length, c, generator=g).requires_grad_()
    model = PrimeModel(BaseBMap(c, ell), FixedLogits(spec, logits), CarryOverHead(), LogLinearSchedule())
    tokens = torch.randint(0, c, (batch, length), generator=g)
    t = torch.full((batch,), 0.5)
    masked = torch.rand(batch, length, ell, generator=g) < 0.5

    def step():
        loss_fn(model, tokens, t=t, masked=masked).mean().backward()

    step()  # warm-up (lazy tables, caches)
    logits.grad = None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / (batch * length * c * 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--json", default=None)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--length", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, fn in (("nelbo (training NELBO, main job)", training_nelbo), ("joint (paper's joint loss)", joint_loss)):
        rows.append({"code": args.label, "loss": name, "batch": args.batch, "length": args.length, "C": 1024,
                     "ell": 2, "peak_buffers": round(peak_buffers(fn, args.batch, args.length, 1024, 2), 2)})
    print(f"prime_core from {prime_core.__file__}")
    print("| code | loss | B × L × C | head+loss peak (logits-sized fp32 buffers) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['code']} | {r['loss']} | {r['batch']} × {r['length']} × {r['C']} | {r['peak_buffers']} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
