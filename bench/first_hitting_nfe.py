"""First-hitting NFE vs ancestral.

    python bench/first_hitting_nfe.py [--samples 2000] [--json OUT.json]

1. NFE table (a tiny random MLP model, C = 16, L = 4, ℓ = 2, linear schedule): for the continuous first-hitting
   sampler and for T ∈ {8, 32, 128, 512}, the mean NFE per row of `first-hitting` (quantised to T) and of
   `ancestral` (idle-step cache on), and whether first-hitting's NFE of every row equals its number of distinct
   reveal events (recomputed from the keyed reveal times).
The share of a step's time spent drawing randomness is measured by bench/rng_profile.py.
"""

from __future__ import annotations

import argparse
import json

import torch


def _model(registry, length=4, ell=2, num_classes=16):
    from prime_core import Config, ModelConfig, build_model

    cfg = Config(model=ModelConfig(num_classes=num_classes, length=length, ell=ell, width=4 * ell,
                                   schedule="linear", backbone_options={"hidden": 64, "depth": 2}))
    torch.manual_seed(0)
    return build_model(cfg, registry).eval()


def nfe_table(model, samples: int) -> list[dict]:
    from prime_core.api import AncestralSampler, FirstHittingSampler, key_words, row_seeds
    from prime_core.sampling.first_hitting import reveal_times

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--json", default="first_hitting_nfe.json")
    args = p.parse_args(argv)
    from prime_core.plugin.default import new_registry

    model = _model(new_registry(load_plugins=False))
    table = nfe_table(model, args.samples)
    print(f"NFE per row, {args.samples} rows, C=16 L=4 ℓ=2 (≤ L·ℓ = 8 reveal events), linear α")
    print(f"{'T':>11} {'first-hitting':>14} {'= events':>9} {'ancestral':>10}")
    for r in table:
        an = f"{r['ancestral_nfe']:.2f}" if "ancestral_nfe" in r else "—"
        print(f"{r['steps']!s:>11} {r['first_hitting_nfe']:>14.2f} {r['nfe_equals_events']!s:>9} {an:>10}")
    with open(args.json, "w") as f:
        json.dump({"nfe": table}, f, indent=1)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
