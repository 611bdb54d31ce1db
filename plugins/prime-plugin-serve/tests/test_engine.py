"""The step-level engine without a server: rows that join at different ticks, with their own T, τ, top_p and
prompts (plain, infill, none), end with the tokens, NFE and idle steps of `generate_prompted` (what `prime sample`
runs) for the same seeds."""

from __future__ import annotations

import torch

from prime_core.api import AncestralSampler, generate_prompted, row_seeds
from prime_plugin_serve.engine import Engine, Group, new_row
from prime_plugin_serve.service import Served


def _reference(served, prompt, n, seed, steps, tau, top_p):
    length = served.length
    fixed = torch.full((n, length), -1, dtype=torch.long)
    if prompt is not None:
        fixed[:, :len(prompt.fixed)] = torch.tensor(prompt.fixed)
    return generate_prompted(served.model, AncestralSampler(), served.text, length, seeds=row_seeds(n, seed),
                             fixed=fixed, prompts=[prompt] * n, steps=steps, temperature=tau, top_p=top_p,
                             draw_dtype=served.draw_dtype)


def test_rows_joining_at_any_tick_equal_prime_sample(ckpt):
    served = Served(ckpt)
    asks = [  # (prompt, infill, n, seed, T, τ, top_p, the tick it joins at)
        ("the quick", False, 2, 5, 8, 1.0, 1.0, 0), ("", False, 1, 9, 5, 0.7, 0.8, 2),
        ("the [MASK:3] fox", True, 2, 13, 12, 1.0, 0.9, 3), ("Emma and", False, 3, 1, 20, 1.3, 1.0, 3),
    ]
    engine = Engine(served.model, served.draw_dtype, served.table)
    got: dict = {}
    tick = 0
    pending = list(enumerate(asks))
    while pending or engine.rows:
        for k, (text, infill, n, seed, steps, tau, top_p, at) in [p for p in pending if p[1][-1] == tick]:
            prompt = served.encode(text, infill)
            group = Group(served.kinds(prompt, served.length),
                          lambda kind, fin, k=k: got.setdefault(k, {}).__setitem__(fin.index, fin) if kind == "done"
                          else None)
            fixed = torch.full((served.length,), -1, dtype=torch.long)
            if prompt is not None:
                fixed[:len(prompt.fixed)] = torch.tensor(prompt.fixed)
            seeds = row_seeds(n, seed)
            engine.add([new_row(served.model, group, i, seeds[i], fixed, steps, tau, top_p) for i in range(n)])
        pending = [p for p in pending if p[1][-1] != tick]
        engine.tick()
        tick += 1
    assert tick < sum(a[4] for a in asks)  # the requests overlapped
    for k, (text, infill, n, seed, steps, tau, top_p, _) in enumerate(asks):
        ref = _reference(served, served.encode(text, infill), n, seed, steps, tau, top_p)
        rows = [got[k][i] for i in range(n)]
        assert [r.tokens for r in rows] == ref.tokens.tolist()
        assert [r.nfe for r in rows] == ref.nfe.tolist() and [r.idle for r in rows] == ref.idle_steps.tolist()


def test_cancelled_rows_leave_at_the_next_tick(ckpt):
    served = Served(ckpt)
    engine = Engine(served.model, served.draw_dtype, served.table)
    keep, drop = Group(None, lambda *_: None), Group(None, lambda *_: None)
    free = torch.full((served.length,), -1, dtype=torch.long)
    engine.add([new_row(served.model, g, 0, s, free, 50, 1.0, 1.0) for g, s in ((keep, 1), (drop, 2))])
    engine.tick()
    drop.cancelled = True
    engine.tick()
    assert [r.group for r in engine.rows] == [keep]
