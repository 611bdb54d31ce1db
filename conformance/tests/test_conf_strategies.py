"""The hypothesis strategies that ship with the suites draw what they promise."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.strategies import (classes_and_ell, enumerable_problems, masks, noisy_states, time_pairs, times,
                                    token_batches)
from prime_core import BaseBMap, smallest_base


@settings(max_examples=200, deadline=None)
@given(classes_and_ell(max_classes=300, max_ell=5))
def test_classes_and_ell_admit_a_base(size):
    num_classes, ell = size
    b = smallest_base(num_classes, ell)
    assert 2 <= num_classes <= 300 and b ** (ell - 1) < num_classes <= b**ell


@settings(max_examples=100, deadline=None)
@given(enumerable_problems(max_units=6))
def test_enumerable_problems_are_small(problem):
    num_classes, ell, length = problem
    assert length * ell <= 6 and length >= 1


@settings(max_examples=100, deadline=None)
@given(time_pairs(1e-4), times())
def test_times(pair, t):
    t1, t2 = pair
    assert 0.0 <= t1 < t2 <= 1.0 and t2 - t1 >= 1e-4 * (1 - 1e-9)
    assert 1e-3 <= t <= 1.0


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_masks_and_noisy_states(data):
    m = BaseBMap(7, 2)
    grouped = data.draw(st.booleans())
    mask = data.draw(masks(3, 2, grouped=grouped))
    assert mask.shape == (3, 2) and mask.dtype == torch.bool
    if grouped:
        assert bool((mask[:, 0] == mask[:, 1]).all())
    x0, y_t = data.draw(noisy_states(m, 3, batch=2, grouped=grouped))
    assert x0.shape == (2, 3) and int(x0.max()) < 7
    observed = y_t != m.mask_id
    assert torch.equal(y_t[observed], m.encode(x0)[observed])  # observed digits are the token's own
    assert data.draw(token_batches(5, (2, 4))).shape == (2, 4)
