"""The conditional bound (prime_core.diffusion.conditional) against the exact conditional likelihood, by enumeration."""

import itertools
import math

import pytest
import torch

from prime_core.api import conditional_nelbo, subset_log_marginal
from prime_core.diffusion.exact import exact_nelbo


def exact_conditional_log_prob(model, tokens, target, context) -> float:
    """log p(target | context) of the process that reveals only target units (context observed, the rest masked):
    the average over orders of the target units of the product of their marginals at each reveal."""
    y0 = model.encode(tokens.view(1, -1))[0]
    per = 1 if model.grouped else model.ell
    units = [(i, j) for i in range(model.length) if target[i] for j in range(per)]
    logs = []
    for order in itertools.permutations(units):
        revealed = context.view(-1, 1).expand(-1, model.ell).clone()
        total = 0.0
        for i, j in order:
            new = torch.zeros_like(revealed)
            if model.grouped:
                new[i, :] = True
            else:
                new[i, j] = True
            y = y0.masked_fill(~revealed, model.mask_id).unsqueeze(0)
            with torch.no_grad():
                log_p = model.log_probs(y, None)
            total += float(subset_log_marginal(log_p, y0.unsqueeze(0), new.unsqueeze(0), model.map)[0, i])
            revealed |= new
        logs.append(total)
    return float(torch.logsumexp(torch.tensor(logs, dtype=torch.float64), 0)) - math.log(len(logs))


def mc_bound(model, tokens, target, context, draws=6000, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        est = conditional_nelbo(model, tokens.expand(draws, -1), target.expand(draws, -1), context.expand(draws, -1),
                                generator=g)
    return float(est.double().mean()), float(est.double().std() / math.sqrt(draws))


@pytest.mark.parametrize("noise", ["independent", "grouped"])
def test_bound_is_above_the_exact_conditional_nll(tiny_model, noise):
    model = tiny_model(num_classes=5, length=3, ell=2, noise=noise, scale=2.0)
    tokens = torch.tensor([3, 1, 4])
    for target, context in [([0, 1, 1], [1, 0, 0]), ([0, 1, 0], [1, 0, 0]), ([1, 1, 0], [0, 0, 0])]:
        target, context = torch.tensor(target, dtype=torch.bool), torch.tensor(context, dtype=torch.bool)
        exact = -exact_conditional_log_prob(model, tokens, target, context)
        value, err = mc_bound(model, tokens, target, context)
        assert value >= exact - 4 * err - 1e-5 * abs(exact), (target, context, value, exact)  # fp32 forward


def test_bound_sums_to_at_most_one_over_continuations(tiny_model):
    """exp(−E[bound]) ≤ p(target | context) for every target value, so their sum over targets is ≤ 1."""
    model = tiny_model(num_classes=3, length=2, ell=2, scale=2.0)
    target, context = torch.tensor([False, True]), torch.tensor([True, False])
    total = 0.0
    for x in range(3):
        tokens = torch.tensor([1, x])
        exact = exact_conditional_log_prob(model, tokens, target, context)
        value, err = mc_bound(model, tokens, target, context, seed=x)
        total += math.exp(-value)
        assert -value <= exact + 4 * err + 1e-5 * abs(exact)
    assert total <= 1.0 + 0.05


def test_no_context_no_hidden_is_the_unconditional_nelbo(tiny_model):
    model = tiny_model(num_classes=5, length=2, ell=2, scale=2.0)
    tokens = torch.tensor([4, 2])
    full, none = torch.tensor([True, True]), torch.tensor([False, False])
    value, err = mc_bound(model, tokens, full, none)
    assert value == pytest.approx(float(exact_nelbo(model, tokens.view(1, -1))[0]), abs=4 * err + 1e-6)


def test_bad_masks_are_refused(tiny_model):
    model = tiny_model(num_classes=5, length=2, ell=2)
    tokens = torch.tensor([[1, 2]])
    with pytest.raises(ValueError, match="both target and context"):
        conditional_nelbo(model, tokens, torch.tensor([[True, True]]), torch.tensor([[True, False]]))
    with pytest.raises(ValueError, match="at least one target"):
        conditional_nelbo(model, tokens, torch.tensor([[False, False]]), torch.tensor([[True, False]]))
