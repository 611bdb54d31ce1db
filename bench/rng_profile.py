"""Share of sampling time spent drawing randomness (issue 9: "< 10 % of a 20 000-row step").

    python bench/rng_profile.py [--rows 20000] [--steps 128] [--classes 512] [--threads 1] [--json OUT.json]

Model: prime's toy MLP (configs/toy2d.toml: L = 2, ℓ = 2, hidden 256, depth 3) at the paper's toy size
C = 512 (b = 23), random weights (time does not depend on training). Two measurements, each the best of
--repeats runs:

1. ``step``: one ancestral step over --rows rows in which every unit reveals (k = T − 1, the worst case for the
   token draw: N = rows·L positions), timed as a whole (reveal uniforms + forward pass + head + filter + draw +
   update) and split into its parts by timing the same calls alone on the same inputs: the keyed uniforms
   (Philox: reveal uniforms [rows, L, ℓ] + one token uniform per position [N]) and the inverse-CDF arithmetic
   (softmax / cumsum / compare over C). For comparison, the former Gumbel-max noise (C keyed uniforms per
   position, −log(−log U)) is timed for the same N positions.
2. ``sample``: `AncestralSampler.sample` of --rows rows, --steps steps, idle-step cache on, with the keyed
   Philox calls (`prime_core.sampling.counter_rng.uniforms`) and the token draw (`categorical`, whose own uniform is
   counted once, as randomness) wrapped in timers for this run only; share = their time / the whole run.

3. ``per_call`` (``--per-call``, issue 21): one `uniforms` call (one token uniform per row, as a step's draw) at
   small and large batches, with the fused `philox4x32` against the word-by-word `philox4x32_reference` (the
   former implementation), the two interleaved; median µs per call over --calls calls × --repeats.

    python bench/rng_profile.py --per-call [--batches 1 16 256 5000] [--json runs/bench/rng_per_call.json]

"Randomness" = the keyed Philox uniforms; the inverse CDF is the exact categorical draw's arithmetic (reported
separately; with Gumbel-max it would be the argmax).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch


def build(classes: int):
    from prime_core import build_model, load_config
    from prime_core.runs.config import Config

    cfg = Config.from_dict(load_config("toy2d", [f"model.num_classes={classes}", "model.length=2"]).to_dict())
    torch.manual_seed(0)
    return build_model(cfg).eval(), cfg


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def step_profile(model, rows: int, repeats: int) -> dict:
    """One full 20 000-row step and its parts, each timed alone on the same inputs (module docstring, 1)."""
    from prime_core.api import (TOKEN, AncestralSampler, Step, categorical, filter_log_probs, gumbel_from_uniform,
                                key_words, reveal_uniforms, row_seeds, token_uniforms, uniforms)

    keys = key_words(row_seeds(rows, 0))
    y = torch.full((rows, model.length, model.ell), model.mask_id, dtype=torch.long)
    reveal = torch.ones_like(y, dtype=torch.bool)
    pos = reveal.any(-1)
    dtype = torch.float64
    step = Step(0.0, 0.0, 1.0, 1.0, 1.0, 1.0, dtype, 0)
    sampler = AncestralSampler()
    with torch.no_grad():
        scores = filter_log_probs(model.log_probs_at(y, pos, torch.zeros(rows)))

    def whole():
        reveal_uniforms(keys, 0, model.length, model.ell)  # drawn by the loop before the reveal call
        with torch.no_grad():
            return sampler.reveal(model, y, reveal, None, keys, step)

    def keyed():
        reveal_uniforms(keys, 0, model.length, model.ell)
        token_uniforms(keys, 0, pos, dtype)

    cols = pos.nonzero(as_tuple=True)[1]
    rows_of = pos.nonzero(as_tuple=True)[0]
    total, rng = best(whole, repeats), best(keyed, repeats)
    token_u = best(lambda: token_uniforms(keys, 0, pos, dtype), repeats)
    draw = best(lambda: categorical(scores, keys[rows_of], 0, cols, TOKEN, dtype), repeats) - token_u
    gumbel = best(lambda: gumbel_from_uniform(uniforms(keys[rows_of], 0, cols, model.num_classes, 1, dtype)),
                  max(1, repeats // 2))
    return {"rows": rows, "positions": int(pos.sum()), "classes": model.num_classes, "draw_dtype": "float64",
            "step_s": total, "keyed_uniforms_s": rng, "inverse_cdf_s": draw, "rng_share": rng / total,
            "draw_share": (rng + draw) / total, "former_gumbel_noise_s": gumbel}


def sample_profile(model, rows: int, steps: int) -> dict:
    """A whole cached sampling run with the keyed draws timed in place (module docstring, 2)."""
    import prime_core.sampling.counter_rng as rng_mod
    import prime_core.sampling.ancestral as sampler_mod
    from prime_core.api import AncestralSampler

    spent = {"keyed_uniforms_s": 0.0, "categorical_s": 0.0, "token_uniforms_s": 0.0}
    originals = (rng_mod.uniforms, sampler_mod.categorical, sampler_mod.uniforms)
    inside = []  # non-empty while a categorical draw runs: its uniform is also counted as a token uniform

    def timed(fn, name):
        def run(*a, **k):
            inside.append(name)
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                took = time.perf_counter() - start
                inside.pop()
                spent[name] += took
                if name == "keyed_uniforms_s" and "categorical_s" in inside:
                    spent["token_uniforms_s"] += took
        return run

    rng_mod.uniforms = sampler_mod.uniforms = timed(originals[0], "keyed_uniforms_s")
    sampler_mod.categorical = timed(originals[1], "categorical_s")
    try:
        start = time.perf_counter()
        res = AncestralSampler().sample(model, rows, steps=steps, seed=0, draw_dtype=torch.float64, cache=True)
        total = time.perf_counter() - start
    finally:
        rng_mod.uniforms, sampler_mod.categorical, sampler_mod.uniforms = originals
    spent["inverse_cdf_s"] = spent["categorical_s"] - spent["token_uniforms_s"]
    return {"rows": rows, "steps": steps, "cache": True, "sample_s": total, **spent,
            "rng_share": spent["keyed_uniforms_s"] / total,
            "draw_share": (spent["keyed_uniforms_s"] + spent["inverse_cdf_s"]) / total,
            "forward_calls": res.forward_calls, "nfe_mean": float(res.nfe.double().mean())}


def per_call(batches: list[int], calls: int, repeats: int) -> list[dict]:
    """µs per `uniforms` call of n rows (module docstring, 3): fused vs reference Philox, interleaved."""
    import statistics

    import prime_core.sampling.counter_rng as rng_mod
    from prime_core.api import TOKEN, key_words, row_seeds

    fused = rng_mod.philox4x32
    impls = {"fused": fused, "reference": rng_mod.philox4x32_reference}
    rows = []
    for n in batches:
        keys, pos = key_words(row_seeds(n, 0)), torch.arange(n) % 2
        times: dict[str, list[float]] = {k: [] for k in impls}
        try:
            for _ in range(repeats):
                for name, impl in impls.items():
                    rng_mod.philox4x32 = impl
                    rng_mod.uniforms(keys, 3, pos, 1, TOKEN)  # warm
                    start = time.perf_counter()
                    for _ in range(calls):
                        rng_mod.uniforms(keys, 3, pos, 1, TOKEN)
                    times[name].append((time.perf_counter() - start) / calls * 1e6)
        finally:
            rng_mod.philox4x32 = fused
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"rows": n, "fused_us": med["fused"], "reference_us": med["reference"],
                     "speedup": med["reference"] / med["fused"]})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--classes", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default="runs/bench/rng_profile.json")
    p.add_argument("--per-call", action="store_true", help="µs per call, fused vs reference (module docstring, 3)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 256, 5000])
    p.add_argument("--calls", type=int, default=200)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.per_call:
        rows = per_call(args.batches, args.calls, args.repeats)
        print(f"one keyed uniform per row, float64, {torch.get_num_threads()} thread(s), median of {args.repeats}")
        print("| rows | fused µs/call | reference µs/call | reference / fused |")
        print("|---|---|---|---|")
        for r in rows:
            print(f"| {r['rows']} | {r['fused_us']:.1f} | {r['reference_us']:.1f} | {r['speedup']:.2f}× |")
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"per_call": rows, "threads": torch.get_num_threads(), "torch": torch.__version__}, fh, indent=1)
        return 0
    model, _ = build(args.classes)
    one = step_profile(model, args.rows, args.repeats)
    run = sample_profile(model, args.rows, args.steps)
    print(f"toy MLP C={model.num_classes} L={model.length} ℓ={model.ell} b={model.base}, float64 draw, "
          f"{torch.get_num_threads()} thread(s)")
    print(f"one step, {one['rows']} rows × {model.length} positions all revealing: {1e3 * one['step_s']:.1f} ms; "
          f"keyed uniforms {1e3 * one['keyed_uniforms_s']:.1f} ms ({100 * one['rng_share']:.1f} %), "
          f"inverse CDF {1e3 * one['inverse_cdf_s']:.1f} ms (uniforms + draw {100 * one['draw_share']:.1f} %); "
          f"the former C-uniform Gumbel noise alone: {1e3 * one['former_gumbel_noise_s']:.0f} ms")
    print(f"sample, {run['rows']} rows × T={run['steps']} (cache on, NFE {run['nfe_mean']:.2f}): "
          f"{run['sample_s']:.2f} s; keyed uniforms {run['keyed_uniforms_s']:.3f} s ({100 * run['rng_share']:.1f} %), "
          f"inverse CDF {run['inverse_cdf_s']:.3f} s (uniforms + draw {100 * run['draw_share']:.1f} %)")
    import os

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as fh:
        json.dump({"step": one, "sample": run, "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])}, fh, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
