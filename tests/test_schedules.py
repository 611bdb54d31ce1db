"""DESIGN §2.2: schedules, their derivatives and weights, training-time sampling."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from prime_core.diffusion.schedules import BUILTIN_SCHEDULES

SCHEDULES = {cls.name: cls for cls in BUILTIN_SCHEDULES}


@pytest.fixture(params=sorted(SCHEDULES))
def schedule(request):
    return SCHEDULES[request.param]()


def test_boundaries(schedule):
    a0 = float(schedule.alpha(torch.tensor(0.0, dtype=torch.float64)))
    a1 = float(schedule.alpha(torch.tensor(1.0, dtype=torch.float64)))
    assert a0 == pytest.approx(1.0, abs=1e-3)
    assert a1 == pytest.approx(0.0, abs=2e-3)  # loglinear keeps α_1 = δ = 1e-3


def test_strictly_decreasing(schedule):
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)
    assert bool((schedule.alpha(t).diff() < 0).all())


@given(t=st.floats(0.01, 0.99))
def test_alpha_prime_matches_finite_differences(t):
    for cls in BUILTIN_SCHEDULES:
        s = cls()
        h = 1e-6
        tt = torch.tensor([t - h, t, t + h], dtype=torch.float64)
        a = s.alpha(tt)
        fd = float((a[2] - a[0]) / (2 * h))
        assert float(s.alpha_prime(tt[1:2])) == pytest.approx(fd, rel=1e-4, abs=1e-6), cls.name


def test_weight_is_finite_positive_and_consistent(schedule):
    t = torch.linspace(1e-3, 1.0, 1000, dtype=torch.float64)
    w = schedule.weight(t)
    assert bool(torch.isfinite(w).all()) and bool((w >= 0).all())
    assert bool((w[:-1] > 0).all())  # the power schedule has α′(1) = 0, so w(1) = 0
    mid = t[(t > 0.05) & (t < 0.95)]
    direct = -schedule.alpha_prime(mid) / (1 - schedule.alpha(mid))
    assert torch.allclose(schedule.weight(mid), direct, rtol=1e-9)


def test_inverse_alpha(schedule):
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    assert torch.allclose(schedule.inverse_alpha(schedule.alpha(t)), t, atol=1e-8)


def test_antithetic_times_are_stratified_and_clipped():
    s = SCHEDULES["linear"]()
    eps = 0.05
    t = s.sample_times(64, eps=eps, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(t.min()) >= eps and float(t.max()) <= 1.0
    strata = ((t - eps) / (1 - eps) * 64).floor().long().sort().values
    assert torch.equal(strata, torch.arange(64))  # exactly one time per stratum


def test_step_alphas_start_masked_and_end_clean(schedule):
    a = schedule.step_alphas(16)
    assert float(a[0]) == 0.0 and float(a[-1]) == 1.0
    assert bool((a.diff() >= 0).all())


def test_bad_parameters():
    with pytest.raises(ValueError, match="exponent"):
        SCHEDULES["polynomial"](exponent=0)
    with pytest.raises(ValueError, match="sigma_max"):
        SCHEDULES["geometric"](sigma_min=2.0, sigma_max=1.0)
    with pytest.raises(ValueError, match="steps"):
        SCHEDULES["linear"]().step_alphas(0)
    assert math.isfinite(float(SCHEDULES["cosine"]().weight(torch.tensor(1e-6))))
