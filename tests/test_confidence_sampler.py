"""DESIGN §2.5 item 8: confidence-ordered reveal (`prime_core.sampling.confidence`) and unit confidence."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from prime_core.api import ConfidenceSampler, reveal_counts, unit_confidence
from prime_core.sampling.confidence import top_units
from prime_core.diffusion.subtokens import BaseBMap


def _newly_observed(trajectory, mask, units):
    """[T, n]: units revealed in each step (a unit counts once, when its first digit appears)."""
    prev = torch.full_like(trajectory[0], mask)
    out = []
    for state in trajectory:
        n, length, ell = state.shape
        was = (prev != mask).view(n, length, units, -1).any(-1)
        now = (state != mask).view(n, length, units, -1).any(-1)
        out.append((now & ~was).flatten(1).sum(-1))
        prev = state
    return torch.stack(out)


@given(free=st.lists(st.integers(0, 40), min_size=1, max_size=5), steps=st.integers(1, 30))
def test_reveal_counts_sum_to_every_free_unit(free, steps):
    alphas = 1.0 - torch.cos(torch.linspace(0, 1, steps + 1, dtype=torch.float64) * torch.pi / 2)
    alphas[-1] = 1.0
    counts = reveal_counts(torch.tensor(free), alphas)
    assert counts.shape == (len(free), steps) and bool((counts >= 0).all())
    assert counts.sum(-1).tolist() == free
    cumulative = counts.cumsum(-1).double()
    expected = torch.tensor(free, dtype=torch.float64)[:, None] * alphas[1:]
    assert bool(((cumulative - expected).abs() <= 0.5 + 1e-9).all())  # rounded expected reveals


@pytest.mark.parametrize("noise", ["independent", "grouped"])
@pytest.mark.parametrize("kind", ["prob", "margin", "entropy"])
def test_reveals_exactly_the_scheduled_number(tiny_model, noise, kind):
    model = tiny_model(num_classes=30, length=5, ell=3, noise=noise)
    sampler = ConfidenceSampler(confidence=kind)
    steps = 7
    out = sampler.sample(model, 6, steps=steps, seed=2, return_trajectory=True)
    units = 1 if noise == "grouped" else 3
    _, alphas = sampler.step_grid(model, steps)
    want = reveal_counts(torch.full((6,), 5 * units), alphas)  # [n, T]
    assert torch.equal(_newly_observed(out.trajectory, model.mask_id, units).T, want)
    assert bool((out.tokens < 30).all())
    assert torch.equal(out.nfe, (want > 0).sum(-1)) and torch.equal(out.idle_steps, (want == 0).sum(-1))


def test_reveals_the_most_confident_units(tiny_model):
    """Step 0 reveals the units whose drawn value has the largest marginal probability."""
    model = tiny_model(num_classes=20, length=6, ell=2)
    sampler = ConfidenceSampler()
    out = sampler.sample(model, 4, steps=4, seed=0, return_trajectory=True, temperature=0.5)
    first = out.trajectory[0]
    y0 = torch.full_like(first, model.mask_id)
    with torch.no_grad():
        log_p = model.log_probs(y0).double()  # [n, L, C]: p_θ(· | all masked), τ = 0.5
    log_p = torch.log_softmax(log_p / 0.5, -1)
    final = model.map.encode(out.tokens)  # digits revealed in step 0 are the drawn ones and never change
    conf = unit_confidence(log_p.flatten(0, 1), final.flatten(0, 1), model.map, False, "prob").view(4, 6, 2)
    chosen = first != model.mask_id
    for row in range(4):
        k = int(chosen[row].sum())
        assert k > 0
        assert float(conf[row][chosen[row]].min()) >= float(conf[row][~chosen[row]].max()) - 1e-12


def test_unit_confidence_kinds():
    m = BaseBMap(4, 2)  # b = 2: tokens 0..3 ↔ digits 00, 01, 10, 11
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float64)
    digits = torch.tensor([[1, 0]])  # x̂ = 2
    prob = unit_confidence(p.log(), digits, m, False, "prob")
    assert prob.tolist()[0] == pytest.approx([0.7, 0.4])  # p(d0 = 1) = 0.3 + 0.4, p(d1 = 0) = 0.1 + 0.3
    margin = unit_confidence(p.log(), digits, m, False, "margin")
    assert margin.tolist()[0] == pytest.approx([0.4, -0.2])
    ent = unit_confidence(p.log(), digits, m, False, "entropy")
    h0 = -(0.3 * torch.tensor(0.3).log() + 0.7 * torch.tensor(0.7).log()).item()
    assert ent[0, 0].item() == pytest.approx(-h0)
    assert unit_confidence(p.log(), digits, m, True, "prob").item() == pytest.approx(0.3)


def test_ties_broken_by_the_keyed_uniform():
    conf = torch.tensor([[0.5, 0.5, 0.5, float("-inf")]], dtype=torch.float64)
    tie = torch.tensor([[0.1, 0.9, 0.4, 0.99]], dtype=torch.float64)
    assert top_units(conf, tie, torch.tensor([2])).tolist() == [[False, True, True, False]]


def test_batch_invariance_fixed_units_and_cache(tiny_model):
    model = tiny_model(num_classes=20, length=5, ell=2)
    sampler = ConfidenceSampler()
    seeds = [3, 2**33 + 1, 7]
    fixed = torch.tensor([-1, 13, -1, -1, 4])
    batch = sampler.sample(model, 3, steps=6, seeds=seeds, fixed_tokens=fixed, return_trajectory=True)
    alone = torch.cat([sampler.sample(model, 1, steps=6, seeds=[s], fixed_tokens=fixed).tokens for s in seeds])
    assert torch.equal(batch.tokens, alone)
    full = sampler.sample(model, 3, steps=6, seeds=seeds, fixed_tokens=fixed, cache=False, batch_size=2)
    assert torch.equal(batch.tokens, full.tokens) and bool((full.nfe == 6).all())
    want = model.map.encode(torch.tensor([13, 4]))
    for state in batch.trajectory:
        assert bool((state[:, [1, 4]] == want).all())
    again = sampler.sample(model, 3, steps=6, seeds=seeds, fixed_tokens=fixed)
    assert torch.equal(batch.tokens, again.tokens)


def test_bad_confidence_kind_is_one_line():
    with pytest.raises(ValueError, match="confidence must be one of prob, margin, entropy") as e:
        ConfidenceSampler(confidence="logit")
    assert "\n" not in str(e.value)
