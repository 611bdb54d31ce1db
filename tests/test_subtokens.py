"""DESIGN §2.1: the base-b map."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from prime_core import BaseBMap, smallest_base


@given(c=st.integers(2, 70_000), ell=st.integers(1, 16))
def test_base_is_smallest_with_power_at_least_c(c, ell):
    """(b−1)^ℓ < C ≤ b^ℓ. The stronger b^(ℓ−1) < C does not hold for every (C, ℓ) (C=33, ℓ=5 gives b=3 and
    3⁴ = 81 ≥ 33); where it fails, the leading digit is 0 for every token (see the next test)."""
    b = smallest_base(c, ell)
    assert b**ell >= c
    assert b == 2 or (b - 1) ** ell < c


@given(c=st.integers(2, 5_000), ell=st.integers(1, 12))
def test_b_pow_ell_minus_one_below_c_iff_leading_digit_is_used(c, ell):
    m = BaseBMap(c, ell)
    leading_used = bool((m.encode(torch.arange(c))[:, 0] > 0).any())
    assert leading_used == (m.base ** (ell - 1) < c)


@given(c=st.integers(2, 70_000), ell=st.integers(1, 16), data=st.data())
def test_round_trip_and_validity(c, ell, data):
    m = BaseBMap(c, ell)
    tokens = torch.tensor(data.draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=64)))
    digits = m.encode(tokens)
    assert digits.shape == (*tokens.shape, ell)
    assert int(digits.min()) >= 0 and int(digits.max()) < m.base
    assert torch.equal(m.decode(digits), tokens)
    assert bool(m.is_valid(m.decode(digits)).all())


@pytest.mark.parametrize("c,ell", [(5, 2), (10, 3), (256, 2), (50257, 2), (1000, 3)])
def test_every_token_round_trips_and_invalid_codes_are_flagged(c, ell):
    m = BaseBMap(c, ell)
    all_tokens = torch.arange(c)
    assert torch.equal(m.decode(m.encode(all_tokens)), all_tokens)
    codes = torch.arange(m.base**ell)
    assert torch.equal(m.is_valid(codes), codes < c)


def test_msb_first_and_design_examples():
    assert BaseBMap(256, 2).encode(torch.tensor(0x3A)).tolist() == [3, 10]
    for (c, ell), b in {(50257, 2): 225, (50257, 3): 37, (50257, 4): 15, (50257, 6): 7, (50257, 8): 4,
                        (256, 2): 16, (256, 4): 4, (256, 8): 2}.items():
        assert smallest_base(c, ell) == b


@pytest.mark.parametrize("k,ell", [(3, 5), (10, 4), (7, 7), (2, 16), (41, 3)])
def test_exact_powers_need_no_extra_digit(k, ell):
    assert smallest_base(k**ell, ell) == k
    assert smallest_base(k**ell + 1, ell) == k + 1


def test_batched_shapes():
    m = BaseBMap(100, 3)
    x = torch.randint(0, 100, (4, 5, 6))
    assert m.encode(x).shape == (4, 5, 6, 3)
    assert torch.equal(m.decode(m.encode(x)), x)


def test_bad_input_messages():
    m = BaseBMap(10, 2)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        m.encode(torch.tensor([10]))
    with pytest.raises(ValueError, match="integer"):
        m.encode(torch.tensor([1.0]))
    with pytest.raises(ValueError, match="ℓ=2"):
        m.decode(torch.zeros(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="C must be"):
        smallest_base(1, 2)
