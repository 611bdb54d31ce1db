"""Noise-schedule suite (DESIGN §2.2): α_t on [0, 1] runs from α₀ ≈ 1 down to α₁ ≈ 0, strictly decreasing,
α′ is its derivative, and the NELBO weight w(t) = −α′_t/(1 − α_t) is finite and ≥ 0 on [ε, 1]."""

from __future__ import annotations

import torch

from .._property import falsify
from ..catalog import check
from ..errors import Failure
from ..strategies import time_pairs, times

BOUNDARY_TOL = 1e-2  # α₀ ≥ 1 − tol, α₁ ≤ tol (log-linear's α₁ = δ = 1e-3, geometric's α₀ = e^(−σ_min))
EPS = 1e-3  # training times are clipped to [ε, 1]


def _alpha(schedule, t: float, dtype=torch.float64) -> float:
    return float(schedule.alpha(torch.tensor([t], dtype=dtype))[0])


@check("schedule")
def check_boundaries(subject):
    """α₀ ≈ 1, α₁ ≈ 0, 0 ≤ α_t ≤ 1 on [0, 1]; the sampler's grid ᾱ runs from 0 to 1, non-decreasing."""
    s = subject.build()
    a0, a1 = _alpha(s, 0.0), _alpha(s, 1.0)
    if not a0 >= 1 - BOUNDARY_TOL:
        raise Failure(f"α₀ must be ≈ 1 (≥ {1 - BOUNDARY_TOL}), got {a0:.6g}", "t=0")
    if not a1 <= BOUNDARY_TOL:
        raise Failure(f"α₁ must be ≈ 0 (≤ {BOUNDARY_TOL}), got {a1:.6g}", "t=1")

    def in_unit(t):
        a = _alpha(s, t)
        if not -1e-12 <= a <= 1.0 + 1e-12:  # rounding at the ends is allowed
            raise Failure(f"α_t must lie in [0, 1], got α({t:.6g}) = {a:.6g}")

    falsify(in_unit, times(0.0))
    for steps in (1, 7, 64):
        grid = s.step_alphas(steps)
        if len(grid) != steps + 1 or float(grid[0]) != 0.0 or float(grid[-1]) != 1.0 or bool((grid.diff() < 0).any()):
            raise Failure(f"step_alphas({steps}) must be [T+1], start at 0, end at 1 and never decrease",
                          f"steps={steps}, grid={[round(float(v), 4) for v in grid[:6]]}…")


@check("schedule")
def check_strictly_decreasing(subject):
    """t₁ < t₂ ⇒ α(t₁) > α(t₂) (float64, gaps ≥ 1e-4), and α′ < 0 on (0, 1)."""
    s = subject.build()

    def prop(pair):
        t1, t2 = pair
        a1, a2 = _alpha(s, t1), _alpha(s, t2)
        if not a1 > a2:
            raise Failure(f"α must be strictly decreasing, but α({t1:.6g}) = {a1:.6g} ≤ α({t2:.6g}) = {a2:.6g}")

    falsify(prop, time_pairs(1e-4))


@check("schedule")
def check_alpha_prime_matches_finite_differences(subject):
    """α′_t agrees with the central difference (α(t+h) − α(t−h))/2h, h = 1e-5, on [0.01, 0.99] (float64)."""
    s = subject.build()
    h = 1e-5

    def prop(t):
        tt = torch.tensor([t - h, t, t + h], dtype=torch.float64)
        a = s.alpha(tt).double()
        fd = float((a[2] - a[0]) / (2 * h))
        exact = float(s.alpha_prime(tt[1:2])[0])
        if not abs(exact - fd) <= 1e-4 * max(1.0, abs(fd)):
            raise Failure(f"α′({t:.6g}) = {exact:.8g} but finite differences give {fd:.8g}")

    falsify(prop, times(0.01, 0.99))


@check("schedule")
def check_weights_finite(subject):
    """w(t) = −α′/(1−α) is finite and ≥ 0 for t ∈ [ε, 1], in float32 (training) and float64."""
    s = subject.build()

    def prop(t):
        for dtype in (torch.float32, torch.float64):
            w = float(s.weight(torch.tensor([t], dtype=dtype))[0])
            if not (w == w and abs(w) != float("inf") and w >= 0):
                raise Failure(f"w({t:.6g}) = {w} in {str(dtype).replace('torch.', '')}; must be finite and ≥ 0")

    falsify(prop, times(EPS, 1.0))
    for t in (EPS, 1.0):  # the ends, always
        prop(t)


@check("schedule")
def check_weight_matches_alpha(subject):
    """w(t) = −α′(t)/(1 − α(t)) with α′ from central differences of ``alpha`` (not the schedule's own
    ``alpha_prime``), on [0.01, 0.99] in float64: an overridden ``weight`` that mis-scales the NELBO fails."""
    s = subject.build()
    h = 1e-5

    def prop(t):
        tt = torch.tensor([t - h, t, t + h], dtype=torch.float64)
        a = s.alpha(tt).double()
        expected = float(-(a[2] - a[0]) / (2 * h) / (1.0 - a[1]))
        got = float(s.weight(tt[1:2])[0])
        if not abs(got - expected) <= 1e-4 * max(1.0, abs(expected)):
            raise Failure(f"w({t:.6g}) = {got:.8g} but −α′/(1 − α) from finite differences of α is {expected:.8g}")

    falsify(prop, times(0.01, 0.99))
