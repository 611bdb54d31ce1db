"""Image sampling throughput: images/s vs steps T, with and without idle-step caching (DESIGN §2.5 step 4).

With caching, a row whose step reveals no sub-token costs no forward pass; without it every row is evaluated at
every step (same samples: the reveal draws come first). Both runs use the same checkpoint, seeds and batch, in one
process, so their ratio is measured under the same machine load.

    python bench/images_sampling.py runs/images/ell2/checkpoint.safetensors [more checkpoints] \
        [--steps 32 64 128] [--n 64] [--json runs/images/sampling.json]

Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from prime_core import load_model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--steps", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--n", type=int, default=64, help="images per run (one batch)")
    ap.add_argument("--sampler", default="image")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default="runs/images/sampling.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from prime_core import get_registry

    sampler = get_registry().build("sampler", args.sampler)
    rows = []
    for ckpt in args.checkpoints:
        model, _, _ = load_model(ckpt)
        sampler.sample(model, 2, steps=2, seed=123)  # warm-up
        for steps in args.steps:
            out = {}
            for cache in (True, False):
                t0 = time.perf_counter()
                res = sampler.sample(model, args.n, steps=steps, seed=0, cache=cache)
                sec = time.perf_counter() - t0
                out[cache] = (res, sec)
            (rc, sc), (ru, su) = out[True], out[False]
            assert torch.equal(rc.tokens, ru.tokens), "caching changed the samples"
            rows.append({"checkpoint": ckpt, "ell": model.ell, "base": model.base, "length": model.length,
                         "steps": steps, "n": args.n, "threads": args.threads,
                         "images_per_s_cached": args.n / sc, "images_per_s_uncached": args.n / su,
                         "speedup": su / sc, "nfe_cached": float(rc.nfe.float().mean()),
                         "nfe_uncached": float(ru.nfe.float().mean()),
                         "idle_ratio": float(rc.idle_steps.float().mean() / steps)})
            print(json.dumps(rows[-1]), flush=True)
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump(rows, fh, indent=2)
    print("\n| ℓ | b | L | T | NFE/image cached | NFE uncached | idle-step ratio | images/s cached | "
          "images/s uncached | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['ell']} | {r['base']} | {r['length']} | {r['steps']} | {r['nfe_cached']:.1f} | "
              f"{r['nfe_uncached']:.0f} | {100 * r['idle_ratio']:.1f} % | {r['images_per_s_cached']:.2f} | "
              f"{r['images_per_s_uncached']:.2f} | {r['speedup']:.2f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
