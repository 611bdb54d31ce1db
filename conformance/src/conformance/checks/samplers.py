"""Sampler suite (DESIGN §2.5–2.6), run on a tiny model (C = 6, ℓ = 2 so b = 3 and codes 6 … 8 are invalid,
L = 3, a fixed-logit backbone): no masks left, every token < C, observed sub-tokens never change, same seed →
same samples, a batch equals its members sampled one by one, the first k rows of N equal k rows and no batch size
changes a row (also under batch-dependent float rounding), idle-step counts match Prop. A.1's closed form.

The contract is `prime_core.Sampler.sample`: ``sample(model, n, steps=T, seed=s)`` returns ``tokens`` [n, L],
``nfe`` and ``idle_steps`` (per sequence), and every keyword the core passes is accepted — ``seeds=`` (per-row
seeds) and ``fixed_tokens=`` (prefix conditioning) are checked for every sampler, never skipped, because
``prime sample`` and semi-autoregressive windows always pass them. ``return_trajectory=`` (states after each
step) is checked where the sampler returns one.
Declared capabilities (class attributes): ``event_driven`` (first-hitting: NFE = reveal events, no idle steps),
``remasking`` (ReMDM: an observed sub-token may go back to the mask, never to another digit; a step that
re-masks is not idle), ``scheduled_reveals`` (confidence-ordered: each row reveals a fixed number of units per
step, so its idle steps are deterministic, not Prop. A.1's).

Each check runs with every map and schedule of the plugin under test (`Subject.setups`; the built-in base-b
map and linear schedule when it has none).
"""

from __future__ import annotations

import inspect

import torch

from prime_core.api import expected_idle_steps

from ..catalog import check
from ..errors import Failure
from ..toy import tiny_model

C, ELL, L = 6, 2, 3


def _accepts(sampler, name: str) -> bool:
    params = inspect.signature(sampler.sample).parameters
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _model(subject, setup, noise: str = "independent"):
    return tiny_model(C, ELL, L, head=subject.registry.build("head", "carry-over"), noise=noise, seed=3,
                      subtoken_map=setup.build_map(C, ELL), schedule=setup.build_schedule())


def _each_setup(subject, body) -> None:
    """Run ``body(setup)`` for each (map, schedule) of the plugin under test; failures name the setup."""
    for setup in subject.setups():
        setup.run(lambda: body(setup))


def _tokens_ok(result, n: int, where: str) -> torch.Tensor:
    tokens = torch.as_tensor(result.tokens)
    if tuple(tokens.shape) != (n, L) or tokens.dtype.is_floating_point:
        raise Failure(f"{where}: tokens must be an integer tensor [N, L]={[n, L]}, got {tokens.dtype} "
                      f"{list(tokens.shape)}")
    if int(tokens.min()) < 0 or int(tokens.max()) >= C:
        bad = tokens[(tokens < 0) | (tokens >= C)]
        raise Failure(f"{where}: every token must be < C={C} (no invalid code, no mask), got {bad[:4].tolist()}")
    return tokens


@check("sampler")
def check_valid_tokens_no_masks(subject):
    """Every output token lies in [0, C) (never an invalid code ≥ C, never a leftover mask), for independent
    and grouped noise and for T = 1 (the last step fills every mask)."""
    _each_setup(subject, lambda setup: _valid_tokens_no_masks(subject, setup))


def _valid_tokens_no_masks(subject, setup):
    sampler = subject.build()
    for noise in ("independent", "grouped"):
        for steps in (1, 4, 16):
            model = _model(subject, setup, noise)
            res = sampler.sample(model, 64, steps=steps, seed=0)
            _tokens_ok(res, 64, f"noise={noise}, steps={steps}")
            traj = getattr(res, "trajectory", None)
            if traj and bool((torch.as_tensor(traj[-1]) == model.mask_id).any()):
                raise Failure("masks left in the final state", f"noise={noise}, steps={steps}")


@check("sampler")
def check_observed_subtokens_never_change(subject):
    """Once a sub-token is revealed it keeps its value in every later state (a ``remasking`` sampler may send
    it back to the mask, never to another digit), and fixed (prefix) tokens come out unchanged — in every state
    of the trajectory. Needs ``return_trajectory=`` or ``fixed_tokens=``."""
    _each_setup(subject, lambda setup: _observed_subtokens_never_change(subject, setup))


def _observed_subtokens_never_change(subject, setup):
    sampler = subject.build()
    model = _model(subject, setup)
    remasking = bool(getattr(sampler, "remasking", False))
    if _accepts(sampler, "return_trajectory"):
        res = sampler.sample(model, 32, steps=8, seed=1, return_trajectory=True)
        traj = res.trajectory
        if not traj:
            raise Failure("return_trajectory=True returned no trajectory")
        prev = torch.full_like(torch.as_tensor(traj[0]), model.mask_id)
        for k, state in enumerate(traj):
            state = torch.as_tensor(state)
            observed = prev != model.mask_id
            changed = observed & (state != prev)
            if remasking:  # back to the mask is allowed, to another digit is not
                changed &= state != model.mask_id
            if bool(changed.any()):
                row, pos, j = changed.nonzero()[0].tolist()
                raise Failure(f"observed sub-token changed in step {k}: sequence {row}, token {pos}, digit {j}: "
                              f"{int(prev[row, pos, j])} → {int(state[row, pos, j])}", "steps=8, seed=1")
            prev = state
        final = model.map.encode(torch.as_tensor(res.tokens))
        if not torch.equal(final, prev):
            raise Failure("the returned tokens differ from the trajectory's final sub-tokens")
    # fixed_tokens= is part of the Sampler contract (prime sample, semi-AR windows): checked for every sampler
    fixed = torch.tensor([4, -1, 2])
    res = sampler.sample(model, 16, steps=8, seed=2, fixed_tokens=fixed)
    tokens = _tokens_ok(res, 16, "fixed_tokens")
    keep = fixed >= 0
    if not bool((tokens[:, keep] == fixed[keep]).all()):
        raise Failure(f"fixed tokens must come out unchanged: fixed {fixed.tolist()}, got "
                      f"{tokens[(tokens[:, keep] != fixed[keep]).any(-1)][0].tolist()}", "seed=2, steps=8")
    if _accepts(sampler, "return_trajectory"):
        _fixed_in_every_state(sampler, model, fixed)


def _fixed_in_every_state(sampler, model, fixed: torch.Tensor) -> None:
    """Fixed tokens hold their digits in every state (never re-masked, never changed)."""
    res = sampler.sample(model, 16, steps=8, seed=2, fixed_tokens=fixed, return_trajectory=True)
    keep = fixed >= 0
    want = model.map.encode(fixed[keep])
    for k, state in enumerate(res.trajectory or []):
        state = torch.as_tensor(state)[:, keep]
        if not bool((state == want).all()):
            raise Failure(f"a fixed token changed (or was re-masked) in step {k}", "seed=2, steps=8")


@check("sampler")
def check_same_seed_same_samples(subject):
    """Two runs with the same seed give identical tokens, NFE and idle counts."""
    _each_setup(subject, lambda setup: _same_seed_same_samples(subject, setup))


def _same_seed_same_samples(subject, setup):
    sampler = subject.build()
    model = _model(subject, setup)
    a = sampler.sample(model, 16, steps=8, seed=7)
    b = sampler.sample(model, 16, steps=8, seed=7)
    ta, tb = torch.as_tensor(a.tokens), torch.as_tensor(b.tokens)
    if not torch.equal(ta, tb):
        row = int((ta != tb).any(-1).nonzero()[0])
        raise Failure(f"same seed, different samples: row {row}: {ta[row].tolist()} vs {tb[row].tolist()}",
                      "seed=7, steps=8, n=16")
    if not (torch.equal(torch.as_tensor(a.idle_steps), torch.as_tensor(b.idle_steps))):
        raise Failure("same seed, different idle-step counts", "seed=7, steps=8")


@check("sampler")
def check_batch_equals_members(subject):
    """Sampling a batch with per-row seeds equals sampling each row alone with its seed (``seeds=``, which
    every sampler accepts)."""
    _each_setup(subject, lambda setup: _batch_equals_members(subject, setup))


def _batch_equals_members(subject, setup):
    sampler = subject.build()
    model = _model(subject, setup)
    seeds = [11, 5, 2**20 + 3, 0]
    batch = torch.as_tensor(sampler.sample(model, len(seeds), steps=8, seeds=seeds).tokens)
    for i, s in enumerate(seeds):
        alone = torch.as_tensor(sampler.sample(model, 1, steps=8, seeds=[s]).tokens)[0]
        if not torch.equal(batch[i], alone):
            raise Failure(f"row {i} of a batch differs from the same seed sampled alone: {batch[i].tolist()} vs "
                          f"{alone.tolist()}", f"seeds={seeds}, steps=8, row={i}")


#: ε of the batch-dependent rounding in `check_rows_independent_of_batch`: a few float32 ulps of logits ≈ 1–3, the
#: size of the batch dependence measured in a DiT's log p (2.4e-6 between batches of 3 and 16)
BATCH_ROUNDING = 1e-6


@check("sampler")
def check_rows_independent_of_batch(subject):
    """Row i depends only on (seed, i): the first k rows of ``num_samples=N`` equal ``num_samples=k``, and every
    ``batch_size`` (and ``cache=False``) gives the same rows — on a backbone whose positions tie exactly and whose
    logits change in their last bits with the batch size, as real float32 kernels' do. A sampler that ranks
    units across the batch, uses batch statistics, or lets rounding pick among tied units fails it."""
    _each_setup(subject, lambda setup: _rows_independent_of_batch(subject, setup))


def _rows_independent_of_batch(subject, setup):
    sampler = subject.build()
    n, k, steps, seed = 12, 3, 8, 7
    for noise in ("independent", "grouped"):
        model = tiny_model(C, ELL, L, head=subject.registry.build("head", "carry-over"), noise=noise, seed=3,
                           subtoken_map=setup.build_map(C, ELL), schedule=setup.build_schedule(),
                           shared_positions=True, batch_rounding=BATCH_ROUNDING)
        where = f"noise={noise}, seed={seed}, steps={steps}"
        full = _tokens_ok(sampler.sample(model, n, steps=steps, seed=seed), n, where)
        first = _tokens_ok(sampler.sample(model, k, steps=steps, seed=seed), k, where)
        _same_rows(first, full[:k], f"num_samples={k} vs the first {k} rows of num_samples={n}", where)
        variants = [dict(batch_size=b) for b in (1, 5) if _accepts(sampler, "batch_size")]
        variants += [dict(cache=False)] if _accepts(sampler, "cache") else []
        for extra in variants:
            got = _tokens_ok(sampler.sample(model, n, steps=steps, seed=seed, **extra), n, where)
            _same_rows(got, full, f"{extra} vs one batch of {n}", where)


def _same_rows(got: torch.Tensor, want: torch.Tensor, what: str, where: str) -> None:
    if not torch.equal(got, want):
        row = int((got != want).any(-1).nonzero()[0])
        raise Failure(f"rows depend on the batch ({what}): row {row}: {got[row].tolist()} vs {want[row].tolist()}",
                      where)


@check("sampler")
def check_idle_steps_match_closed_form(subject):
    """0 ≤ idle ≤ T, NFE ≥ T − idle (every step that reveals something needs a forward pass) and NFE ≤ T,
    and the mean idle count matches E[#idle] = Σ_k (1 − (ᾱ_{k+1} − ᾱ_k))^N (DESIGN §2.6), N = L·ℓ units
    (L under grouped noise), within 5 standard errors. An event-driven sampler (class attribute
    ``event_driven = True``, e.g. first-hitting) has no idle steps (idle = 0) and evaluates once per distinct
    step that reveals something: its mean NFE must match T − E[#idle] instead. A ``remasking`` sampler re-reveals
    re-masked units and counts a step that only re-masks as neither idle nor evaluated: NFE + idle ≤ T. A
    ``scheduled_reveals`` sampler reveals a fixed number per step: idle is the same for every row (all rows have
    the same free units here) and NFE = T − idle."""
    _each_setup(subject, lambda setup: _idle_steps_match_closed_form(subject, setup))


def _idle_steps_match_closed_form(subject, setup):
    sampler = subject.build()
    n, steps = 400, 16
    for noise in ("independent", "grouped"):
        model = _model(subject, setup, noise)
        res = sampler.sample(model, n, steps=steps, seed=5)
        idle = torch.as_tensor(res.idle_steps).double()
        nfe = torch.as_tensor(res.nfe).double()
        where = f"noise={noise}, T={steps}, n={n}"
        if tuple(idle.shape) != (n,) or tuple(nfe.shape) != (n,):
            raise Failure(f"idle_steps and nfe must be per sequence [N]={[n]}, got {list(idle.shape)}, "
                          f"{list(nfe.shape)}", where)
        units = L if noise == "grouped" else L * ELL
        expected = expected_idle_steps(model.schedule, units, 1, steps)
        if getattr(sampler, "event_driven", False):
            _event_nfe_matches(idle, nfe, steps, expected, where)
            continue
        if getattr(sampler, "remasking", False) or getattr(sampler, "scheduled_reveals", False):
            _idle_counts_bounded(sampler, idle, nfe, steps, where)
            continue
        if bool((idle < 0).any() | (idle > steps).any()):
            raise Failure("idle-step counts must lie in [0, T]", where)
        if bool((nfe < steps - idle).any() | (nfe > steps).any()):
            raise Failure("NFE must lie in [T − idle, T]: a step that reveals something needs a forward pass",
                          where)
        mean, se = float(idle.mean()), float(idle.std() / n**0.5)
        if abs(mean - expected) > 5 * se + 0.05:
            raise Failure(f"mean idle steps {mean:.3f} ± {se:.3f} disagree with the closed form {expected:.3f}",
                          where)


def _idle_counts_bounded(sampler, idle, nfe, steps: int, where: str) -> None:
    """Counts of a re-masking or scheduled-reveal sampler (no closed form): within [0, T], NFE + idle ≤ T; for
    scheduled reveals NFE + idle = T and one idle count for every row."""
    if bool((idle < 0).any() | (nfe < 0).any() | (nfe + idle > steps).any()):
        raise Failure("idle steps and NFE must be ≥ 0 with NFE + idle ≤ T (a step is idle, evaluated, or only "
                      "re-masks)", where)
    if getattr(sampler, "scheduled_reveals", False):
        if bool((nfe + idle != steps).any()):
            raise Failure("a scheduled-reveal sampler evaluates exactly the steps that reveal: NFE + idle = T", where)
        if bool((idle != idle[0]).any()):
            raise Failure(f"rows with the same free units must reveal on the same steps, got idle counts "
                          f"{sorted(set(idle.long().tolist()))}", where)


def _event_nfe_matches(idle, nfe, steps: int, expected_idle: float, where: str) -> None:
    """NFE of an event-driven sampler = distinct reveal steps, E = T − E[#idle]; idle must be 0."""
    if bool((idle != 0).any()):
        raise Failure("an event-driven sampler has no idle steps: idle_steps must be 0", where)
    if bool((nfe < 1).any() | (nfe > steps).any()):
        raise Failure("NFE must lie in [1, T]: at least one reveal event, at most one per step", where)
    mean, se = float(nfe.mean()), float(nfe.std() / len(nfe) ** 0.5)
    if abs(mean - (steps - expected_idle)) > 5 * se + 0.05:
        raise Failure(f"mean NFE {mean:.3f} ± {se:.3f} disagrees with T − E[#idle] = {steps - expected_idle:.3f}",
                      where)


@check("sampler")
def check_draw_dtype_keyword(subject):
    """``draw_dtype=`` (the token draw's precision, float32 or float64) is taken and gives valid tokens, and the
    deprecated ``gumbel_dtype=`` still draws the very same tokens, with a DeprecationWarning (docs/plugins.md,
    compatibility policy): the `Sampler` base class answers to both names for every subclass."""
    _each_setup(subject, lambda setup: _draw_dtype_keyword(subject, setup))


def _draw_dtype_keyword(subject, setup):
    import warnings

    sampler = subject.build()
    model = _model(subject, setup)
    for dtype in (torch.float32, torch.float64):
        where = f"draw_dtype={dtype}, steps=4"
        new = _tokens_ok(sampler.sample(model, 8, steps=4, seed=5, draw_dtype=dtype), 8, where)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            old = _tokens_ok(sampler.sample(model, 8, steps=4, seed=5, gumbel_dtype=dtype), 8, where)
        if not any(issubclass(w.category, DeprecationWarning) and "gumbel_dtype" in str(w.message) for w in caught):
            raise Failure("gumbel_dtype= must still be accepted with a DeprecationWarning naming it (subclass "
                          "prime_core.Sampler, which translates it)", where)
        _same_rows(old, new, "gumbel_dtype= vs draw_dtype=", where)
