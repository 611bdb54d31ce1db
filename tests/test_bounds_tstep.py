"""Issue 24 item 1: the T-step NELBO is exact at every allowed T (1 … 10⁶).

`losses.tstep_nelbo` draws one step k per row and the masked units of y_{t_k}; the units revealed in step k are
summed out exactly (`losses.expected_reveal_nll`). Its expectation over (k, mask) is computed here by enumeration,
through the same `losses.tstep_term` the estimator calls, and must equal `exact.exact_tstep_nelbo` (a DP over pairs
R ⊆ R′ of revealed sets), which must be ≥ the T-step sampler's exact NLL −log p_T(x) and tend to the continuous
NELBO (≥ the exact NLL of the continuous model) as T grows.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prime_core.diffusion import exact, losses
from prime_core.plugin.default import new_registry
from prime_test_models import make_model

REGISTRY = new_registry(load_plugins=False)
PROBLEMS = [  # (head, noise, schedule, C, L, ℓ): N = L·ℓ (or L grouped) ≤ 6 reveal units
    ("carry-over", "independent", "cosine", 5, 2, 2),
    ("carry-over", "grouped", "loglinear", 5, 2, 2),
    ("joint", "independent", "linear", 4, 2, 2),
    ("independent", "independent", "polynomial", 5, 2, 2),
    ("carry-over", "independent", "linear", 7, 2, 3),
    ("carry-over", "independent", "geometric", 3, 3, 1),
]
problems = st.sampled_from(PROBLEMS)
seeds = st.integers(0, 10_000)


def _model(problem, seed, scale=1.5):
    head, noise, schedule, c, length, ell = problem
    return make_model(REGISTRY, num_classes=c, length=length, ell=ell, head=head, noise=noise, schedule=schedule,
                      seed=seed, scale=scale)


def _sequence(model, seed) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.num_classes, (1, model.length), generator=g)


@torch.no_grad()
def enumerated_estimator_mean(model, x: torch.Tensor, steps: int) -> float:
    """E[`tstep_nelbo`] for one sequence x [1, L], exactly: Σ_k (1/T) Σ_R ᾱ_k^|R| (1−ᾱ_k)^(N−|R|) · tstep_term(k, R)
    over every step k and every revealed set R of the N units."""
    units = exact.reveal_units(model)
    n = units.shape[0]
    masks = ~exact.revealed_sets(units)  # [2^N, L, ℓ]
    size = torch.tensor([bin(r).count("1") for r in range(2**n)], dtype=torch.float64)
    alphas = model.schedule.step_alphas(steps)
    k = torch.arange(steps).repeat_interleave(2**n)
    masked = masks.repeat(steps, 1, 1)
    a = alphas[k]
    weight = torch.where(size.repeat(steps) == 0, 1.0, a.pow(size.repeat(steps))) * \
        torch.where(size.repeat(steps) == n, 1.0, (1 - a).pow(n - size.repeat(steps))) / steps
    terms = losses.tstep_term(model, x.repeat(len(k), 1), k, masked, steps=steps)
    used = weight > 0
    return float((weight[used] * terms[used]).sum())


def naive_tstep_nelbo(model, x: torch.Tensor, steps: int) -> float:
    """The T-step NELBO by a plain float64 loop over steps (the pre-fix formula, fine for small T)."""
    alphas = model.schedule.step_alphas(steps)
    e = exact._Enumeration(model, x)
    sets, sets2, pair = e.transitions()
    weight = torch.zeros(len(sets), dtype=torch.float64)
    for k in range(steps):
        a = float(alphas[k])
        r = float((alphas[k + 1] - alphas[k]) / (1.0 - alphas[k]))
        log_q = torch.xlogy(e.size[sets].double(), torch.tensor(a, dtype=torch.float64)) + \
            torch.xlogy((e.n - e.size[sets]).double(), torch.tensor(1.0 - a, dtype=torch.float64))
        weight += (log_q + exact._step_log_weights(e, sets, sets2, r)).exp()
    return float(-(weight.unsqueeze(-1) * pair).sum(0)[0])


@settings(max_examples=12, deadline=None)
@given(problem=problems, seed=seeds, steps=st.sampled_from([1, 2, 7, 1000]))
def test_estimator_expectation_equals_the_exact_tstep_nelbo(problem, seed, steps):
    model = _model(problem, seed).double()  # float64 weights: no float32 rounding that depends on the batch size
    x = _sequence(model, seed)
    target = float(exact.exact_tstep_nelbo(model, x, steps)[0])
    assert enumerated_estimator_mean(model, x, steps) == pytest.approx(target, rel=1e-9, abs=1e-9)
    if steps <= 7:  # the log-space weights agree with the plain loop where the loop is accurate
        assert naive_tstep_nelbo(model, x, steps) == pytest.approx(target, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("problem", [PROBLEMS[0], PROBLEMS[1]], ids=["independent", "grouped"])
def test_estimator_mean_at_a_million_steps(problem):
    """T = 10⁶: the k-sum is too long to enumerate, so average 200,000 stratified draws (the old estimator read
    0 here: its revealed set was empty in all but ~N/T of the draws)."""
    steps, n = 10**6, 200_000
    model = _model(problem, 3, scale=1.0)
    x = _sequence(model, 3)
    with torch.no_grad():
        draws = losses.tstep_nelbo(model, x.repeat(n, 1), steps=steps, generator=torch.Generator().manual_seed(0))
    target = float(exact.exact_tstep_nelbo(model, x, steps)[0])
    assert target > 0.5
    se = float(draws.std()) / math.sqrt(n)
    assert float(draws.mean()) == pytest.approx(target, abs=4 * se)
    assert float((draws > 0).double().mean()) > 0.5  # Rao-Blackwellised: no longer zero almost always


@settings(max_examples=6, deadline=None)
@given(problem=problems, seed=seeds, steps=st.sampled_from([1, 2, 7, 200]))
def test_tstep_nelbo_bounds_the_tstep_nll(problem, seed, steps):
    """exact T-step NELBO ≥ −log p_T(x) for every sequence (exact_tstep_log_likelihood is a DP with one Python
    iteration per step: T ≤ 200 here; larger T are covered through the continuous limit below)."""
    model = _model(problem, seed)
    seqs = exact.all_sequences(model.num_classes, model.length)
    nll_t = -exact.exact_tstep_log_likelihood(model, seqs, steps)
    assert bool((exact.exact_tstep_nelbo(model, seqs, steps) >= nll_t - 1e-9).all())


@settings(max_examples=3, deadline=None)
@given(problem=problems, seed=seeds)
def test_tstep_nelbo_tends_to_the_continuous_nelbo(problem, seed):
    """|NELBO_T − NELBO_∞| shrinks as T grows and is ~0 at T = 10⁶, where NELBO_T ≥ the continuous exact NLL."""
    model = _model(problem, seed)
    seqs = exact.all_sequences(model.num_classes, model.length)[:8]
    cont = exact.exact_nelbo(model, seqs)
    nll = -exact.exact_log_likelihood(model, seqs)
    gaps = [float((exact.exact_tstep_nelbo(model, seqs, t) - cont).abs().max()) for t in (7, 1000, 10**6)]
    assert gaps[0] > gaps[1] > gaps[2]
    assert gaps[2] < 1e-4 * float(cont.abs().max())
    assert bool((exact.exact_tstep_nelbo(model, seqs, 10**6) >= nll - 1e-6).all())


def _reversed_map(c, ell):
    """A non-positional map: the base-b digits in reverse order (exercises the generic subset loop)."""
    from prime_core.diffusion.subtokens import BaseBMap

    class Reversed(BaseBMap):
        def encode(self, tokens):
            return super().encode(tokens).flip(-1)

        def decode(self, digits):
            return super().decode(digits.flip(-1))

    return Reversed(c, ell)


@pytest.mark.parametrize("positional", [True, False])
@pytest.mark.parametrize("c,ell", [(7, 2), (20, 3), (5, 1)])
def test_all_subset_log_marginals_match_one_subset_at_a_time(positional, c, ell):
    """`all_subset_log_marginals` (all 2^ℓ digit subsets at once, used by the T-step estimator) equals
    `subset_log_marginal` called once per subset, for the lean positional path and the generic one."""
    from prime_core.diffusion.heads import all_subset_log_marginals, subset_log_marginal
    from prime_core.diffusion.subtokens import BaseBMap

    smap = BaseBMap(c, ell) if positional else _reversed_map(c, ell)
    assert smap.is_positional == positional
    g = torch.Generator().manual_seed(c * 10 + ell)
    log_p = torch.log_softmax(torch.randn(3, 4, c, generator=g, dtype=torch.float64) * 2, -1)
    targets = smap.encode(torch.randint(0, c, (3, 4), generator=g))
    every = all_subset_log_marginals(log_p, targets, smap)
    for s in range(2**ell):
        subset = torch.tensor([bool(s >> j & 1) for j in range(ell)]).expand(3, 4, ell)
        assert torch.allclose(every[..., s], subset_log_marginal(log_p, targets, subset, smap), atol=1e-12)
