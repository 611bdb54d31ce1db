"""Step-level continuous batching of the ancestral sampler (DESIGN §2.5), for `prime serve`.

`prime_core.api.AncestralSampler.sample` runs one batch from its first step to its last. A server wants rows to
join while others are half-way, so this module runs the same update one step at a time over a *changing* set of
rows, each with its own step counter k, grid (T, t_k, ᾱ_k), temperature τ and nucleus mass top_p. A row that joins
at tick n starts at its own k = 0; rows never wait for a batch to end.

Why every row gets the tokens `prime sample` gives it alone: every random number is keyed by (row key, k,
position, digit) (`prime_core.api.key_words`, `reveal_steps`, `draw_tokens`), never by the batch, and each row's
update uses only its own p_θ(· | y_t), τ, top_p and step k. Per tick:

1. reveal = (y = m) ∧ (planned reveal step of the unit = k_row) — the plan is `reveal_steps` of the row's own
   grid, drawn once when the row joins, exactly as the sampler draws it (its σ = 0 path);
2. rows that reveal nothing are idle (no forward pass; counted as idle steps, as the sampler's cache does);
3. one backbone call for all revealing rows: log p_θ at the revealing positions (`log_probs_at`, t per row),
   word-boundary conditioning per prompt group (as `prime_core.api.WordBoundaries` does for one prompt's rows),
   temperature and nucleus filtering per (τ, top_p) group (`filter_log_probs`; per-row ops), the keyed draw
   x̂ = `draw_tokens`(…, k per row) and y_s = `ancestral_update`;
4. k ← k + 1 for every row; a row with k = T is finished (no mask left, every code < C).

Only the plain ancestral sampler runs here; other samplers and runtimes run whole requests (`run_whole`).
"""

from __future__ import annotations

import math
from typing import Callable

import attrs
import torch

from prime_core.api import (ANY, ancestral_update, draw_tokens, filter_log_probs, key_words, model_device,
                            reveal_steps)


@attrs.define(eq=False)
class Group:
    """The rows of one (request, prompt): they share a prompt's word-boundary kinds [L] (None: unconstrained)
    and a `sink` that receives each step's revealed units and the finished rows."""

    kinds: torch.Tensor | None
    sink: Callable[[str, object], None]
    wants_steps: bool = False  # streamed denoising: report every step (a copy of the state per row and step)
    cancelled: bool = False


@attrs.define(eq=False)
class Row:
    """One sequence being denoised: sub-token state y [L, ℓ], planned reveal step per unit [L, U], step k of T."""

    group: Group
    index: int  # the row's index inside its request (the OpenAI choice index)
    key: torch.Tensor  # [2] key words of the row seed
    y: torch.Tensor  # [L, ℓ] long, m = masked
    plan: torch.Tensor  # [L, U] long
    times: torch.Tensor  # [T + 1] float64, t_k = 1 − k/T
    steps: int
    temperature: float
    top_p: float
    k: int = 0
    nfe: int = 0
    idle: int = 0


@attrs.frozen
class StepEvent:
    """What one tick did to one row: the units revealed at step k as (position i, digit j, value) triples."""

    index: int
    step: int
    steps: int
    revealed: list[tuple[int, int, int]]
    nfe: int
    idle: int
    state: torch.Tensor  # [L, ℓ] the row's sub-tokens after the step (m = masked), on the host


@attrs.frozen
class Finished:
    index: int
    tokens: list[int]  # the L tokens, all < C
    nfe: int
    idle: int
    steps: int


def start_state(model, fixed: torch.Tensor) -> torch.Tensor:
    """All-mask y [L, ℓ] with the fixed tokens (−1 = free) of ``fixed`` [L] encoded (the sampler's start)."""
    y = torch.full((model.length, model.ell), model.mask_id, dtype=torch.long)
    keep = fixed >= 0
    if bool(keep.any()):
        model.map.check_tokens(fixed[keep])
        y[keep] = model.map.encode(fixed[keep])
    return y


def new_row(model, group: Group, index: int, seed: int, fixed: torch.Tensor, steps: int, temperature: float,
            top_p: float) -> Row:
    """A row keyed by ``seed`` (a 64-bit row key, as `row_seeds` makes them) with its reveal plan drawn up front."""
    if not (temperature > 0 and math.isfinite(temperature)) or not 0.0 < top_p <= 1.0:
        raise ValueError(f"temperature must be > 0 and top_p in (0, 1], got {temperature}, {top_p}")
    device = model_device(model)
    key = key_words([seed], device)
    alphas = model.schedule.step_alphas(steps)
    units = 1 if model.grouped else model.ell
    plan = reveal_steps(key, alphas, model.length, units)[0]
    times = 1.0 - torch.arange(steps + 1, dtype=torch.float64) / steps
    return Row(group, index, key[0], start_state(model, fixed).to(device), plan, times, steps, temperature, top_p)


class Engine:
    """The rows in flight and `tick`, one step for each of them (see the module docstring)."""

    def __init__(self, model, draw_dtype: torch.dtype, table: torch.Tensor | None = None):
        self.model, self.draw_dtype, self.table = model, draw_dtype, table
        self.rows: list[Row] = []
        self.forward_calls = 0

    def add(self, rows: list[Row]) -> None:
        self.rows.extend(rows)

    def drop_cancelled(self) -> int:
        """Remove the rows of cancelled groups (a client that went away); returns how many were freed."""
        keep = [r for r in self.rows if not r.group.cancelled]
        freed, self.rows = len(self.rows) - len(keep), keep
        return freed

    @torch.no_grad()
    def tick(self) -> None:
        """One reveal step for every row in flight; finished rows leave and are reported to their group."""
        self.drop_cancelled()
        if not self.rows:
            return
        model, rows = self.model, self.rows
        y = torch.stack([r.y for r in rows])  # [n, L, ℓ]
        n, length, ell = y.shape
        ks = torch.tensor([r.k for r in rows], dtype=torch.long, device=y.device)
        planned = torch.stack([r.plan for r in rows]) == ks[:, None, None]  # [n, L, U]
        reveal = (y == model.mask_id) & planned.expand(n, length, ell)
        active = reveal.flatten(1).any(-1)
        act = active.nonzero().squeeze(-1).tolist()
        if act:
            y[act] = self._reveal(y[act], reveal[act], [rows[i] for i in act])
        for i, row in enumerate(rows):
            row.y = y[i]
            if active[i]:
                row.nfe += 1
            else:
                row.idle += 1
            if row.group.wants_steps:
                units = reveal[i].nonzero().tolist() if active[i] else []
                state = row.y.to("cpu", copy=True)
                revealed = [(p, j, int(state[p, j])) for p, j in units]
                row.group.sink("step", StepEvent(row.index, row.k, row.steps, revealed, row.nfe, row.idle, state))
            row.k += 1
        self.rows = [r for r in rows if r.k < r.steps]
        for row in rows:
            if row.k >= row.steps:
                row.group.sink("done", self._finish(row))

    def _reveal(self, y: torch.Tensor, reveal: torch.Tensor, rows: list[Row]) -> torch.Tensor:
        """y_s for the m revealing rows: one forward pass, per-group conditioning and filtering, keyed draw."""
        pos = reveal.any(-1)  # [m, L]
        t = torch.tensor([float(r.times[r.k]) for r in rows], dtype=torch.float32, device=y.device)
        log_p = self.model.log_probs_at(y, pos, t)  # [N, C], N revealing positions, row-major
        self.forward_calls += 1
        owner = pos.nonzero(as_tuple=True)[0]  # [N] which of the m rows each position belongs to
        log_p = self._word_boundaries(log_p, pos, owner, rows)
        scores = torch.empty(log_p.shape, dtype=torch.float64, device=log_p.device)
        for (tau, top_p), members in _groups(rows, lambda r: (r.temperature, r.top_p)).items():
            sel = torch.isin(owner, torch.tensor(members, device=owner.device))
            scores[sel] = filter_log_probs(log_p[sel], tau, top_p)  # per-position ops: a subset changes nothing
        keys = torch.stack([r.key for r in rows])
        ks = torch.tensor([r.k for r in rows], dtype=torch.long, device=y.device)
        x_hat = draw_tokens(scores, keys, ks, pos, self.draw_dtype)
        return ancestral_update(x_hat, y, reveal, self.model.map)

    def _word_boundaries(self, log_p, pos, owner, rows: list[Row]) -> torch.Tensor:
        """`WordBoundaries.log_probs_at` per prompt group: within a group that has a constrained position among
        this step's revealing ones, every position's p is conditioned (renormalised) as `prime sample` does."""
        if self.table is None:
            return log_p
        out = log_p
        for group, members in _groups(rows, lambda r: r.group).items():
            if group.kinds is None:
                continue
            sel = torch.isin(owner, torch.tensor(members, device=owner.device))
            at = group.kinds.to(log_p.device).expand(pos.shape)[pos][sel]
            if not bool((at != ANY).any()):
                continue
            part = log_p[sel]
            restricted = part.masked_fill(~self.table.to(log_p.device)[at], float("-inf"))
            possible = torch.isfinite(restricted).any(-1, keepdim=True)
            out = out.clone() if out is log_p else out
            out[sel] = torch.where(possible, torch.log_softmax(restricted, -1), part)
        return out

    def _finish(self, row: Row) -> Finished:
        model = self.model
        if bool((row.y == model.mask_id).any()):
            raise RuntimeError("the served ancestral sampler left masked sub-tokens")
        tokens = model.map.decode(row.y[None])[0]
        if not bool(model.map.is_valid(tokens).all()):
            raise RuntimeError("the served ancestral sampler produced an invalid code (≥ C)")
        return Finished(row.index, tokens.cpu().tolist(), row.nfe, row.idle, row.steps)


def _groups(rows: list[Row], key) -> dict:
    """{key(row): [indices of rows with that key]}, in first-seen order."""
    out: dict = {}
    for i, r in enumerate(rows):
        out.setdefault(key(r), []).append(i)
    return out
