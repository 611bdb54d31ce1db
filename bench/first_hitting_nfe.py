"""First-hitting NFE vs ancestral, and the RNG share of a large ancestral step.

    python bench/first_hitting_nfe.py [--rows 20000] [--samples 2000] [--json OUT.json]

1. NFE table (a tiny random MLP model, C = 16, L = 4, ℓ = 2, linear schedule): for the continuous first-hitting
   sampler and for T ∈ {8, 32, 128, 512}, the mean NFE per row of `first-hitting` (quantised to T) and of
   `ancestral` (idle-step cache on), and whether first-hitting's NFE of every row equals its number of distinct
   reveal events (recomputed from the keyed reveal times).
2. Profile: one step of the ancestral sampler over --rows rows (every row revealing at its first step, the
   worst case for Gumbel noise), timed as a whole and for its keyed draws alone (reveal uniforms + Gumbel
   noise), giving the RNG share of the step.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _model(registry, length=4, ell=2, num_classes=16):
    from prime_core import Config, ModelConfig, build_model

    cfg = Config(model=ModelConfig(num_classes=num_classes, length=length, ell=ell, width=4 * ell,
                                   schedule="linear", backbone_options={"hidden": 64, "depth": 2}))
    torch.manual_seed(0)
    return build_model(cfg, registry).eval()


def nfe_table(model, samples: int) -> list[dict]:
    from prime_core.api import AncestralSampler, FirstHittingSampler, key_words, row_seeds
    from prime_core.first_hitting import reveal_times

    rows = []
    keys = key_words(row_seeds(samples, 0))
    for steps in (None, 8, 32, 128, 512):
        fh = FirstHittingSampler().sample(model, samples, steps=steps, seed=0)
        times = reveal_times(model, keys, steps).view(samples, -1)
        events = torch.tensor([len(set(r.tolist())) for r in times])
        row = {"steps": steps or "continuous", "first_hitting_nfe": float(fh.nfe.double().mean()),
               "nfe_equals_events": bool(torch.equal(fh.nfe, events)),
               "first_hitting_forward_calls": fh.forward_calls}
        if steps:
            an = AncestralSampler().sample(model, samples, steps=steps, seed=0)
            row.update(ancestral_nfe=float(an.nfe.double().mean()), ancestral_forward_calls=an.forward_calls)
        rows.append(row)
    return rows


def _best(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def rng_profile(model, n: int) -> dict:
    """Time of one full ancestral step (k = T − 1: every masked unit reveals) vs its keyed draws alone."""
    from prime_core.api import AncestralSampler, Step, key_words, reveal_uniforms, row_seeds, token_uniforms
    from prime_core.counter_rng import gumbel_from_uniform

    keys = key_words(row_seeds(n, 0))
    y = torch.full((n, model.length, model.ell), model.mask_id, dtype=torch.long)
    reveal = torch.ones_like(y, dtype=torch.bool)
    step = Step(0.0, 0.0, 1.0, 1.0, 1.0, 1.0, torch.float32, 0)
    sampler = AncestralSampler()

    def draws():
        u = reveal_uniforms(keys, 0, model.length, model.ell)
        g = gumbel_from_uniform(token_uniforms(keys, 0, reveal.any(-1), model.num_classes, torch.float32))
        return u, g

    def full_step():
        draws()[0]  # the reveal uniforms the loop draws before the reveal call
        with torch.no_grad():
            return sampler.reveal(model, y, reveal, None, keys, step)

    rng = _best(draws)
    total = _best(full_step)
    return {"rows": n, "positions": n * model.length, "classes": model.num_classes, "step_s": total,
            "rng_s": rng, "rng_share": rng / total, "threads": torch.get_num_threads()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--json", default="first_hitting_nfe.json")
    args = p.parse_args(argv)
    from prime_core.registry import new_registry

    model = _model(new_registry(load_plugins=False))
    table = nfe_table(model, args.samples)
    print(f"NFE per row, {args.samples} rows, C=16 L=4 ℓ=2 (≤ L·ℓ = 8 reveal events), linear α")
    print(f"{'T':>11} {'first-hitting':>14} {'= events':>9} {'ancestral':>10}")
    for r in table:
        an = f"{r['ancestral_nfe']:.2f}" if "ancestral_nfe" in r else "—"
        print(f"{r['steps']!s:>11} {r['first_hitting_nfe']:>14.2f} {r['nfe_equals_events']!s:>9} {an:>10}")
    prof = rng_profile(model, args.rows)
    print(f"one ancestral step, {prof['rows']} rows × L={model.length} positions × C={prof['classes']}: "
          f"{1e3 * prof['step_s']:.1f} ms, keyed draws {1e3 * prof['rng_s']:.1f} ms "
          f"({100 * prof['rng_share']:.1f} %), {prof['threads']} threads")
    with open(args.json, "w") as f:
        json.dump({"nfe": table, "rng_profile": prof}, f, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
