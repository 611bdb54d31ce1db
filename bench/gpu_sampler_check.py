"""The same sampler on a device vs the CPU, through `prime sample/eval --device` on a tiny trained checkpoint.

1. ``prime train --device cpu`` a tiny toy-2d checkpoint (C = 64, L = 2, ℓ = 2; seconds).
2. For --device and cpu: ``prime sample CKPT --device D --json`` (identical tokens expected: the draws are keyed
   on the row seeds, not on the device) and, in this process, `load_model(device=D)` + the ``ancestral`` sampler
   (cache on and off) timed after one warm-up call → samples/s.
3. ``prime eval CKPT --device D --json`` on both: the valid bounds, equal up to float rounding (their noise comes
   from CPU generators).
Prints one table and exits 1 if a check failed.

    python bench/gpu_sampler_check.py --device cuda --json out.json
    python bench/gpu_sampler_check.py --device cpu --tiny      (the code path on a machine without a GPU)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch


def prime(*args) -> str:
    out = subprocess.run([sys.executable, "-m", "prime_core", *args], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"prime {' '.join(args)} failed: {out.stderr.strip()[-400:]}")
    return out.stdout


def timed_sampling(ckpt: str, device: str, n: int, steps: int) -> dict:
    from prime_core.api import get_registry, load_model, resolve_device

    dev = resolve_device(device)
    model, _, _ = load_model(ckpt, device=dev)
    sampler = get_registry().build("sampler", "ancestral")
    out = {}
    for cache in (True, False):
        sampler.sample(model, min(n, 64), steps=steps, seed=1, cache=cache)  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        r = sampler.sample(model, n, steps=steps, seed=0, cache=cache)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        out["cache on" if cache else "cache off"] = {"samples_per_s": n / (time.perf_counter() - t0),
                                                     "tokens": r.tokens.cpu()}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="the device compared with the CPU")
    p.add_argument("--num-samples", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--tiny", action="store_true", help="50 samples, 8 steps, 5 training steps")
    p.add_argument("--json")
    args = p.parse_args(argv)
    n, steps, train_steps = (50, 8, 5) if args.tiny else (args.num_samples, args.steps, 300)
    ok, rows = True, []
    with tempfile.TemporaryDirectory() as tmp:
        prime("train", "--config", "toy2d", "--out", tmp, "--quiet", "--device", "cpu",
              "--set", f"train.steps={train_steps}", "--set", "train.log_every=5",
              "--set", "data.options={ size = 64, num_train = 4096, num_eval = 512 }")
        ckpt = os.path.join(tmp, "checkpoint.safetensors")
        cli, timing, evals = {}, {}, {}
        for dev in (args.device, "cpu"):
            cli[dev] = json.loads(prime("sample", ckpt, "-n", "256", "--steps", str(steps), "--device", dev,
                                        "--json", "--quiet"))["tokens"]
            timing[dev] = timed_sampling(ckpt, dev, n, steps)
            evals[dev] = json.loads(prime("eval", ckpt, "--device", dev, "--json", "--mc", "2",
                                         "--max-sequences", "512"))
    same_cli = cli[args.device] == cli["cpu"]
    for mode in ("cache on", "cache off"):
        a, b = timing[args.device][mode], timing["cpu"][mode]
        same = bool(torch.equal(a["tokens"], b["tokens"]))
        ok &= same
        rows.append({"sampler": f"ancestral {mode}", "T": steps, "samples": n,
                     f"{args.device} samples/s": a["samples_per_s"], "cpu samples/s": b["samples_per_s"],
                     "speed-up": a["samples_per_s"] / b["samples_per_s"], "identical tokens": same})
    bounds = []
    for x, y in zip(evals[args.device]["metrics"], evals["cpu"]["metrics"]):
        close = abs(x["value"] - y["value"]) <= 1e-3 * max(1.0, abs(y["value"]))
        ok &= close
        bounds.append({"metric": x["label"], args.device: x["value"], "cpu": y["value"], "close": close})
    ok &= same_cli
    print(f"| sampler | T | samples | {args.device} samples/s | cpu samples/s | speed-up | identical tokens |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['sampler']} | {steps} | {n} | {r[f'{args.device} samples/s']:,.0f} | "
              f"{r['cpu samples/s']:,.0f} | {r['speed-up']:.2f}× | {r['identical tokens']} |")
    print(f"prime sample --device {args.device} vs --device cpu (256 samples): identical tokens: {same_cli}")
    for b in bounds:
        print(f"prime eval: {b['metric']}: {args.device} {b[args.device]:.5f}, cpu {b['cpu']:.5f} nats/token "
              f"(close: {b['close']})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"rows": rows, "cli_identical_tokens": same_cli, "eval": bounds, "ok": ok}, fh, indent=2)
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
