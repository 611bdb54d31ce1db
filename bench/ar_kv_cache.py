"""Autoregressive sampling throughput with and without the KV cache (`ARSampler`, plugin prime-plugin-dit).

    python bench/ar_kv_cache.py [--length 256] [--samples 8] [--json runs/ar-kv-cache.json]

Model: dit-ar, preset small (4 blocks, D = 128, 4 heads, cond 64), C = 1024, ℓ = 1, random weights (throughput
does not depend on them). "uncached" reruns the causal DiT over all L positions for every token (the head at the
new position only); "KV cache" runs one position per token against the cached keys/values. Both draw the same
tokens for the same seeds (checked here and printed). One thread; best of --repeats.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from prime_core import Config, ModelConfig, build_model, get_registry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=256)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cfg = Config(model=ModelConfig(num_classes=1024, length=args.length, ell=1, width=128, backbone="dit-ar",
                                   backbone_options={"preset": "small", "heads": 4, "cond_dim": 64}))
    model = build_model(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    sampler = get_registry().build("sampler", "ar")
    rows, tokens = [], {}
    for name, kv in (("uncached (full causal pass per token)", False), ("KV cache", True)):
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            tokens[kv] = sampler.sample(model, args.samples, seed=0, kv_cache=kv).tokens
            best = min(best, time.perf_counter() - t0)
        rows.append({"path": name, "length": args.length, "samples": args.samples, "seconds": best,
                     "tokens_per_s": args.samples * args.length / best})
    same = bool(torch.equal(tokens[False], tokens[True]))
    print(f"dit-ar small, L = {args.length}, C = 1024, {args.samples} samples, 1 thread; same tokens: {same}")
    print("| path | s | tokens/s |")
    print("|---|---|---|")
    for r in rows:
        print(f"| {r['path']} | {r['seconds']:.2f} | {r['tokens_per_s']:.0f} |")
    print(f"speed-up: {rows[1]['tokens_per_s'] / rows[0]['tokens_per_s']:.1f}×")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "same_tokens": same}, fh, indent=1)


if __name__ == "__main__":
    main()
