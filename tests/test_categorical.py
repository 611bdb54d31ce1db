"""The keyed inverse-CDF token draw (prime_core.sampling.counter_rng.categorical / inverse_cdf; DESIGN §2.5 items 2, 7)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from prime_core.api import categorical, draw_tokens, inverse_cdf, key_words, row_keys
from prime_core.sampling.counter_rng import EVENT_TOKEN, TOKEN, _searched_inverse_cdf, uniforms

DTYPES = [torch.float32, torch.float64]
# the largest uniform each dtype's keyed draw can produce: (2ⁿ − ½)·2⁻ⁿ, n = 23 / 52
U_MAX = {torch.float32: 1.0 - 2.0**-24, torch.float64: 1.0 - 2.0**-53}


@pytest.mark.parametrize("dtype", DTYPES)
def test_keyed_draw_matches_softmax_chi_square(dtype):
    """20 000 keyed draws from one distribution (with a −inf class): χ² against p = softmax(scores)."""
    scores = torch.tensor([0.3, -1.2, float("-inf"), 1.5, -0.4, 0.0, -3.0])
    p = torch.softmax(scores.double(), -1)
    n = 20000
    keys = key_words(row_keys(n, 7))
    x = categorical(scores.expand(n, -1), keys, 3, torch.zeros(n, dtype=torch.long), TOKEN, dtype)
    counts = torch.bincount(x, minlength=len(p)).double()
    assert counts[2] == 0  # probability 0 is never drawn
    keep = p > 0
    expected = n * p[keep]
    stat = float(((counts[keep] - expected) ** 2 / expected).sum())
    assert stat < chi2.ppf(0.999, int(keep.sum()) - 1), (stat, counts.tolist(), expected.tolist())


def test_draw_is_the_inverse_cdf_of_the_keyed_uniform():
    """x̂ = min{c : F_c > u·F_{C−1}} with u the uniform keyed by (row key, step, position, 0, stream)."""
    torch.manual_seed(0)
    scores = torch.randn(50, 9, dtype=torch.float64)
    keys = key_words(row_keys(50, 1))
    pos = torch.arange(50) % 4
    x = categorical(scores, keys, 5, pos, EVENT_TOKEN, torch.float64)
    u = uniforms(keys, 5, pos, 1, EVENT_TOKEN, torch.float64)[:, 0]
    cdf = torch.softmax(scores, -1).cumsum(-1)
    for r in range(50):
        assert int(x[r]) == int((cdf[r] <= u[r] * cdf[r, -1]).sum())


@pytest.mark.parametrize("dtype", DTYPES)
def test_u_near_one_returns_the_last_class_with_positive_probability(dtype):
    scores = torch.tensor([[0.0, 2.0, float("-inf"), float("-inf")],
                           [float("-inf"), -30.0, 1.0, float("-inf")],
                           [5.0, float("-inf"), float("-inf"), float("-inf")]], dtype=dtype)
    top = torch.full((3,), U_MAX[dtype], dtype=dtype)
    one = torch.ones(3, dtype=dtype)  # even u = 1 exactly (no class above u·total): clamped, never a −inf class
    low = torch.full((3,), 2.0**-53, dtype=dtype)
    for draw in (inverse_cdf, _searched_inverse_cdf):
        assert draw(scores, top).tolist() == [1, 2, 0]
        assert draw(scores, one).tolist() == [1, 2, 0]
        assert draw(scores, low).tolist() == [0, 1, 0]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(0, 2**32 - 1), st.sampled_from(DTYPES),
       st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4))
def test_never_a_zero_probability_class(classes, seed, dtype, extra_u):
    """Random scores with random −inf classes (≥ 1 finite), u anywhere in (0, 1] incl. the extremes."""
    g = torch.Generator().manual_seed(seed)
    n = 16
    scores = (torch.randn(n, classes, generator=g) * 20).to(dtype)
    dead = torch.rand(n, classes, generator=g) < 0.6
    dead[torch.arange(n), torch.randint(0, classes, (n,), generator=g)] = False
    scores = scores.masked_fill(dead, float("-inf"))
    u = torch.tensor([U_MAX[dtype], 1.0, 2.0**-24, *extra_u] * 2 + [0.5] * 2, dtype=dtype)[:n].clamp_min(2.0**-60)
    x = inverse_cdf(scores, u)
    assert bool(torch.isfinite(scores.gather(1, x[:, None])).all())
    assert bool((torch.softmax(scores, -1).gather(1, x[:, None]) > 0).all())
    assert torch.equal(_searched_inverse_cdf(scores, u), x)  # the eager binary search: the same x̂


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=25, deadline=None)
def test_draw_is_monotone_in_u(seed):
    """An inverse CDF: a larger uniform never gives a smaller class."""
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(1, 12, generator=g, dtype=torch.float64).expand(200, -1)
    u = torch.rand(200, generator=g, dtype=torch.float64).sort().values.clamp_min(1e-12)
    x = inverse_cdf(scores, u)
    assert bool((x[1:] >= x[:-1]).all())


def test_draw_tokens_keys_each_position_by_its_row():
    """draw_tokens over a mask [m, L] = categorical at each marked (row, position); batch-independent."""
    torch.manual_seed(1)
    keys = key_words(row_keys(4, 3))
    where = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.bool)
    scores = torch.randn(int(where.sum()), 30)
    x = draw_tokens(scores, keys, 2, where, torch.float64)
    rows, cols = where.nonzero(as_tuple=True)
    for j, (r, i) in enumerate(zip(rows.tolist(), cols.tolist())):
        alone = categorical(scores[j:j + 1], keys[r:r + 1], 2, torch.tensor([i]), TOKEN, torch.float64)
        assert int(alone) == int(x[j])


def test_bad_dtype_is_refused():
    with pytest.raises(ValueError, match="float32 or float64"):
        categorical(torch.zeros(1, 3), key_words([0]), 0, torch.zeros(1, dtype=torch.long), TOKEN, torch.float16)


def test_float64_draw_keeps_tail_mass_that_float32_loses():
    """Why float64 is the default precision: a class with p ≈ 1e-9 is below float32's resolution of u·total
    (2⁻²³ bins), so a float32 draw cannot reach it at the rate p, while the float64 draw's bins (2⁻⁵²) can."""
    assert 2.0**-23 > 1e-9 > 2.0**-52
    scores = torch.tensor([[math.log(1e-9), 0.0]], dtype=torch.float64)
    u64 = torch.tensor([5e-10], dtype=torch.float64)  # F_0 = 1e-9 > u: class 0
    assert int(inverse_cdf(scores, u64)) == 0
    assert int(inverse_cdf(scores.float(), torch.tensor([2.0**-24]))) == 1  # smallest float32 uniform misses it
