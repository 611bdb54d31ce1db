"""Generating N = 1,024 tokens: block diffusion with its KV cache vs today's semi-AR windows vs AR with its KV cache.

    python bench/block_generation.py [--tokens 1024] [--repeats 1] [--json runs/block-generation.json]

Every model is the main job's DiT (preset small: 4 blocks, D = 128, 4 heads, cond 64), C = 4096, random weights
(throughput does not depend on them), one row, ancestral sampler, float64 token draws, one thread:
- "block B, KV cache": ℓ = 2, L = 64, ``model.block_size`` = B, T = B steps per block (one step per token, as
  the main job's T = L); the clean blocks come from the cache (window L − B), each block is committed once.
- "block B, no cache": the same model re-running its clean context every step (the reference path; same tokens).
- "semi-AR windows": today's MDLM-Prime model (ℓ = 2, L = 64, no blocks): windows of L tokens, stride L/2,
  T = 64 steps per window (the main job's sample.steps), the idle-step cache on.
- "AR, KV cache": dit-ar with L = N (an AR model cannot slide), one position per token.
Paths are interleaved (each repeat runs every path once, in turn) and the best of --repeats is kept, so a busy
machine slows every path alike. Prints a markdown table and the ratios to the semi-AR path; writes JSON.
"""

from __future__ import annotations

import argparse

import torch
from _common import best_of_interleaved, main_job_dit, write_json

from prime_core import get_registry
from prime_core.api import generate


def model(backbone: str, length: int, ell: int, block: int | None = None):
    return main_job_dit(backbone=backbone, length=length, ell=ell, block=block, random_std=0.05).eval()


def paths(n: int, blocks: list[int]):
    """(name, run → (tokens [1, n], NFE)) for every path."""
    reg = get_registry()
    ancestral, ar = reg.build("sampler", "ancestral"), reg.build("sampler", "ar")
    common = dict(temperature=1.0, top_p=1.0, draw_dtype=torch.float64, cache=True, progress=False)
    out = []
    for b in blocks:
        m = model("dit", 64, 2, b)
        for kv in (True, False):
            out.append((f"block B = {b}, {'KV cache' if kv else 'no cache'} (T = {b}/block)",
                        lambda m=m, b=b, kv=kv: generate(m, ancestral, n, seeds=[0], steps=b, kv_cache=kv, **common)))
    semi = model("dit", 64, 2)
    out.append(("semi-AR windows (L = 64, stride 32, T = 64/window)",
                lambda: generate(semi, ancestral, n, seeds=[0], steps=64, **common)))
    ar_model = model("dit-ar", n, 1)
    out.append(("AR, KV cache", lambda: ar.sample(ar_model, 1, seed=0, kv_cache=True)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--blocks", type=int, nargs="+", default=[4, 16])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with torch.no_grad():
        best, results = best_of_interleaved(dict(paths(args.tokens, args.blocks)), args.repeats, echo=True)
    nfe = {name: float(r.nfe.float().mean()) for name, r in results.items()}
    tokens = {name: r.tokens for name, r in results.items()}
    semi = next(name for name in best if name.startswith("semi-AR"))
    rows = [{"path": name, "tokens": args.tokens, "seconds": s, "tokens_per_s": args.tokens / s, "nfe": nfe[name],
             "vs_semi_ar": best[semi] / s} for name, s in best.items()]
    same = {b: bool(torch.equal(tokens[f"block B = {b}, KV cache (T = {b}/block)"],
                                tokens[f"block B = {b}, no cache (T = {b}/block)"])) for b in args.blocks}
    print(f"{args.tokens} tokens, 1 row, DiT small (D = 128, 4 blocks), C = 4096, 1 thread, best of "
          f"{args.repeats} interleaved; cache = no-cache tokens: {same}")
    print("| path | s | tokens/s | NFE | × semi-AR |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['path']} | {r['seconds']:.2f} | {r['tokens_per_s']:.0f} | {r['nfe']:.0f} | {r['vs_semi_ar']:.1f} |")
    write_json(args.json, {"rows": rows, "same_tokens": {str(k): v for k, v in same.items()}})


if __name__ == "__main__":
    main()
