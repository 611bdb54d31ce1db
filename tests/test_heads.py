"""DESIGN §2.3: parameterizations, carry-over (Prop. A.4) and marginals."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from prime_core.diffusion.forward import apply_mask, sample_mask
from prime_core.diffusion.heads import consistent, digit_marginals, subset_log_marginal
from prime_test_models import make_model

HEADS = ["carry-over", "joint", "independent"]


def random_state(model, batch=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, model.num_classes, (batch, model.length), generator=g)
    y0 = model.map.encode(x)
    masked = sample_mask(y0.shape, torch.rand(batch, generator=g), grouped=False, generator=g)
    return x, y0, apply_mask(y0, masked, model.mask_id)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("c,ell", [(5, 2), (10, 3), (16, 2), (7, 1)])
def test_pmf_is_valid_and_supported_on_consistent_tokens(tiny_model, head, c, ell):
    model = tiny_model(num_classes=c, length=3, ell=ell, head=head)
    _, _, y_t = random_state(model)
    with torch.no_grad():
        lp = model.log_probs(y_t)
    assert lp.shape == (16, 3, c)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(16, 3), atol=1e-5)
    assert bool((lp.exp()[~consistent(y_t, model.map)] == 0).all())  # Prop. A.4: zero mass outside V


@pytest.mark.parametrize("head", HEADS)
def test_fully_observed_token_is_carried_over(tiny_model, head):
    model = tiny_model(num_classes=10, length=2, ell=2, head=head)
    x = torch.tensor([[3, 9], [0, 7]])
    with torch.no_grad():
        lp = model.log_probs(model.map.encode(x))
    assert torch.equal(lp.argmax(-1), x)
    assert torch.allclose(lp.exp().amax(-1), torch.ones(2, 2))


def test_joint_training_distribution_is_unrestricted(tiny_model):
    model = tiny_model(num_classes=10, length=2, ell=2, head="joint")
    _, _, y_t = random_state(model)
    with torch.no_grad():
        train_lp = model.training_log_probs(y_t)
    assert bool(torch.isfinite(train_lp).all())  # no carry-over in the joint head's training loss


def test_independent_head_is_a_product_before_restriction(tiny_model):
    model = tiny_model(num_classes=9, length=1, ell=2, head="independent")  # b = 3, every code valid
    y_t = torch.full((1, 1, 2), model.mask_id)
    with torch.no_grad():
        logits = model(y_t)
        p = model.log_probs(y_t).exp().view(3, 3)
        digits = model.head.digit_log_probs(logits, model.map).exp()[0, 0]
    assert torch.allclose(p, digits[0][:, None] * digits[1][None, :], atol=1e-6)


@given(seed=st.integers(0, 1000), head=st.sampled_from(HEADS))
def test_marginals_sum_to_one_and_match_subset_marginals(registry, seed, head):
    from prime_test_models import make_model

    model = make_model(registry, num_classes=11, length=2, ell=3, head=head, seed=seed % 7)
    _, y0, y_t = random_state(model, batch=4, seed=seed)
    with torch.no_grad():
        lp = model.log_probs(y_t)
    marg = digit_marginals(lp, model.map)
    assert torch.allclose(marg.sum(-1), torch.ones(4, 2, 3), atol=1e-5)
    for j in range(3):
        only_j = torch.zeros_like(y0, dtype=torch.bool)
        only_j[..., j] = True
        direct = subset_log_marginal(lp, y0, only_j, model.map).exp()
        assert torch.allclose(direct, marg[..., j, :].gather(-1, y0[..., j:j + 1]).squeeze(-1), atol=1e-5)
    everything = torch.ones_like(y0, dtype=torch.bool)
    x = model.map.decode(y0)
    assert torch.allclose(subset_log_marginal(lp, y0, everything, model.map),
                          lp.gather(-1, x.unsqueeze(-1)).squeeze(-1), atol=1e-5)
    nothing = torch.zeros_like(y0, dtype=torch.bool)
    assert torch.allclose(subset_log_marginal(lp, y0, nothing, model.map), torch.zeros(4, 2), atol=1e-5)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("noise", ["independent", "grouped"])
def test_log_probs_at_equals_full_log_probs_at_those_positions(registry, head, noise):
    """The sampler's head-at-revealing-positions path gives the same numbers as the full [B, L, C] head."""
    model = make_model(registry, num_classes=11, length=6, ell=2, head=head, noise=noise, time_conditioned=True)
    g = torch.Generator().manual_seed(0)
    y = model.encode(torch.randint(0, 11, (4, 6), generator=g))
    y[torch.rand(y.shape, generator=g) < 0.5] = model.mask_id
    where = torch.rand(4, 6, generator=g) < 0.4
    t = torch.rand(4, generator=g)
    assert torch.equal(model.log_probs_at(y, where, t), model.log_probs(y, t)[where])
