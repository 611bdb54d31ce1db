"""The lean code-grid head path (prime_core.diffusion.heads, positional maps) equals the mask-based reference path."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prime_core import BaseBMap
from prime_core.diffusion.heads import (IndependentHead, consistent, digit_log_marginal_at, digit_log_marginals, digit_marginals,
                              restrict,
                              subset_log_marginal)

NEG_INF = float("-inf")


# --------------------------------------------------------------------------------- reference (the old mask path)
def ref_restrict(scores, y_t, m):
    return torch.log_softmax(scores.float().masked_fill(~consistent(y_t, m), NEG_INF), dim=-1)


def ref_subset_log_marginal(log_p, targets, subset, m):
    table = m.digit_table(log_p.device)
    keep = torch.ones_like(log_p, dtype=torch.bool)
    for j in range(m.ell):
        keep &= ~subset[..., j:j + 1] | (table[:, j] == targets[..., j:j + 1])
    return torch.logsumexp(log_p.masked_fill(~keep, NEG_INF), dim=-1)


def ref_digit_marginals(log_p, m):
    table = m.digit_table(log_p.device)
    p = log_p.exp()
    out = p.new_zeros(*p.shape[:-1], m.ell, m.base)
    for j in range(m.ell):
        out[..., j, :].index_add_(-1, table[:, j], p)
    return out


class ReversedDigits(BaseBMap):
    """Least-significant digit first: not the positional order the grid assumes."""

    def encode(self, tokens):
        return super().encode(tokens).flip(-1)

    def decode(self, digits):
        return super().decode(digits.flip(-1))


@st.composite
def problems(draw, map_cls=BaseBMap):
    c = draw(st.integers(2, 40))
    ell = draw(st.integers(1, 4))
    m = map_cls(c, ell)
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.randint(0, c, shape, generator=g)
    y0 = m.encode(x)
    masked = torch.rand(*y0.shape, generator=g) < draw(st.floats(0.0, 1.0))
    y_t = y0.masked_fill(masked, m.mask_id)
    scores = 3 * torch.randn(*shape, c, generator=g)
    subset = masked & (torch.rand(*y0.shape, generator=g) < 0.6)
    return m, scores, y0, y_t, subset


def _close(a, b):
    fa, fb = torch.isfinite(a), torch.isfinite(b)
    return torch.equal(fa, fb) and torch.equal(a[~fa], b[~fb]) and torch.allclose(a[fa], b[fb], atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(problems())
def test_lean_restrict_equals_mask_path(problem):
    m, scores, _, y_t, _ = problem
    assert m.is_positional
    assert _close(restrict(scores, y_t, m), ref_restrict(scores, y_t, m))


@settings(max_examples=60, deadline=None)
@given(problems())
def test_lean_marginals_equal_mask_path(problem):
    m, scores, y0, y_t, subset = problem
    log_p = ref_restrict(scores, y_t, m)
    lean = subset_log_marginal(log_p, y0, subset, m)
    ref = torch.where(subset.any(-1), ref_subset_log_marginal(log_p, y0, subset, m), torch.zeros(()))
    assert _close(lean, ref)
    assert torch.allclose(digit_marginals(log_p, m), ref_digit_marginals(log_p, m), atol=1e-5)
    assert torch.allclose(digit_log_marginals(log_p, m).exp(), ref_digit_marginals(log_p, m), atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(problems())
def test_lean_independent_scores_equal_table_gather(problem):
    m, _, _, y_t, _ = problem
    head = IndependentHead()
    logits = torch.randn(*y_t.shape[:-1], head.output_dim(m))
    lp = head.digit_log_probs(logits, m)
    table = m.digit_table()
    ref = sum(lp[..., j, :][..., table[:, j]] for j in range(m.ell))
    assert torch.allclose(head.token_scores(logits, m), ref, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(problems(ReversedDigits))
def test_non_positional_map_uses_generic_path(problem):
    m, scores, y0, y_t, subset = problem
    assert not m.is_positional
    log_p = restrict(scores, y_t, m)
    assert _close(log_p, ref_restrict(scores, y_t, m))
    ref = torch.where(subset.any(-1), ref_subset_log_marginal(log_p, y0, subset, m), torch.zeros(()))
    assert _close(subset_log_marginal(log_p, y0, subset, m), ref)
    assert torch.allclose(digit_marginals(log_p, m), ref_digit_marginals(log_p, m), atol=1e-5)


@pytest.mark.parametrize("c, ell", [(1024, 2), (50, 3), (7, 1)])
def test_empty_subset_marginal_is_exactly_zero(c, ell):
    m = BaseBMap(c, ell)
    g = torch.Generator().manual_seed(0)
    log_p = torch.log_softmax(10 * torch.randn(4, 8, c, generator=g), -1)
    y0 = m.encode(torch.randint(0, c, (4, 8), generator=g))
    nothing = torch.zeros_like(y0, dtype=torch.bool)
    assert torch.equal(subset_log_marginal(log_p, y0, nothing, m), torch.zeros(4, 8))
    ref = ref_subset_log_marginal(log_p, y0, nothing, m)  # log Σ p: rounding leaves it off 0 somewhere
    assert float(ref.abs().max()) > 0


def test_overridden_encode_is_not_positional():
    assert BaseBMap(10, 2).is_positional
    assert not ReversedDigits(10, 2).is_positional


@settings(max_examples=40, deadline=None)
@given(problems())
def test_digit_marginal_at_value_and_gradient_equal_autograd_reference(problem):
    """The custom backward of digit_log_marginal_at (one scattered gradient buffer) equals autograd through
    the mask-path marginals, including codes padded past C and ℓ = 1."""
    m, scores, y0, y_t, subset = problem
    weights = torch.randn(*y0.shape, dtype=torch.float64)
    log_p = ref_restrict(scores, y_t, m).double().requires_grad_()
    lean = digit_log_marginal_at(log_p, y0, m)
    ref = torch.stack([ref_subset_log_marginal(log_p, y0, torch.eye(m.ell, dtype=torch.bool)[j].expand_as(y0), m)
                       for j in range(m.ell)], dim=-1)
    assert torch.allclose(lean, ref, atol=1e-9)
    (g_lean,) = torch.autograd.grad((torch.where(subset, lean, 0.0) * weights).sum(), log_p)
    (g_ref,) = torch.autograd.grad((torch.where(subset, ref, 0.0) * weights).sum(), log_p)
    assert torch.allclose(torch.nan_to_num(g_lean), torch.nan_to_num(g_ref), atol=1e-9)
