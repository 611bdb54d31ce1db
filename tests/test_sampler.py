"""DESIGN §2.5: the ancestral sampler."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from prime_core import AncestralSampler
from prime_core.diffusion import exact
from prime_core.sampling.ancestral import filter_log_probs, row_seeds

sampler = AncestralSampler()


@given(c=st.integers(2, 40), ell=st.integers(1, 4), head=st.sampled_from(["carry-over", "joint", "independent"]),
       schedule=st.sampled_from(["linear", "cosine", "geometric", "power", "loglinear", "polynomial"]),
       steps=st.integers(1, 12), noise=st.sampled_from(["independent", "grouped"]))
def test_every_sample_is_a_valid_token(registry, c, ell, head, schedule, steps, noise):
    from prime_test_models import make_model

    model = make_model(registry, num_classes=c, length=3, ell=ell, head=head, schedule=schedule, noise=noise,
                       scale=2.0)
    out = sampler.sample(model, 6, steps=steps, seed=c)
    assert out.tokens.shape == (6, 3)
    assert bool(((out.tokens >= 0) & (out.tokens < c)).all())
    assert bool((out.nfe + out.idle_steps == steps).all())


def test_same_seed_same_samples_and_batch_equals_members(tiny_model):
    model = tiny_model(num_classes=20, length=4, ell=2)
    a = sampler.sample(model, 8, steps=16, seed=3)
    b = sampler.sample(model, 8, steps=16, seed=3)
    assert torch.equal(a.tokens, b.tokens)
    c = sampler.sample(model, 8, steps=16, seed=4)
    assert not torch.equal(a.tokens, c.tokens)
    seeds = [3 * 2**32 + i for i in range(8)]  # the row keys of seed 3
    alone = torch.cat([sampler.sample(model, 1, steps=16, seeds=[s]).tokens for s in seeds])
    assert torch.equal(a.tokens, alone)
    chunked = sampler.sample(model, 8, steps=16, seed=3, batch_size=3)
    assert torch.equal(a.tokens, chunked.tokens)


def test_idle_step_cache_changes_cost_not_samples(tiny_model):
    model = tiny_model(num_classes=20, length=2, ell=2)
    cached = sampler.sample(model, 16, steps=64, seed=0)
    full = sampler.sample(model, 16, steps=64, seed=0, cache=False)
    assert torch.equal(cached.tokens, full.tokens)
    assert bool((full.nfe == 64).all())
    assert int(cached.nfe.sum()) < int(full.nfe.sum()) // 4  # L·ℓ = 4, T = 64: most steps are idle
    assert bool((cached.nfe + cached.idle_steps == 64).all())


def test_observed_subtokens_never_change(tiny_model):
    model = tiny_model(num_classes=30, length=3, ell=3)
    out = sampler.sample(model, 5, steps=10, seed=1, return_trajectory=True)
    prev = torch.full_like(out.trajectory[0], model.mask_id)
    for state in out.trajectory:
        was_observed = prev != model.mask_id
        assert torch.equal(state[was_observed], prev[was_observed])
        prev = state
    assert bool((out.trajectory[-1] != model.mask_id).all())  # the last step fills every mask


def test_prefix_and_digit_infilling(tiny_model):
    model = tiny_model(num_classes=50, length=4, ell=2)  # b = 8
    fixed = torch.tensor([7, -1, 42, -1])
    out = sampler.sample(model, 10, steps=8, seed=0, fixed_tokens=fixed)
    assert bool((out.tokens[:, 0] == 7).all()) and bool((out.tokens[:, 2] == 42).all())
    digits = torch.full((4, 2), -1)
    digits[1, 0] = 5  # token 1 must have leading digit 5 → tokens 40 … 47
    out = sampler.sample(model, 10, steps=8, seed=0, fixed_digits=digits)
    assert bool(((out.tokens[:, 1] >= 40) & (out.tokens[:, 1] < 48)).all())
    digits[1, 0] = 7  # codes 56 … 63 are all ≥ C = 50: no valid token
    with pytest.raises(ValueError, match="no valid token"):
        sampler.sample(model, 2, steps=4, fixed_digits=digits)


def test_sampler_distribution_matches_exact_tstep_likelihood(tiny_model):
    """The empirical distribution of samples equals p_T of prime_core.diffusion.exact (a χ² goodness-of-fit test)."""
    model = tiny_model(num_classes=4, length=2, ell=2, scale=1.0)
    steps, n = 3, 6000
    seqs = exact.all_sequences(4, 2)
    p = exact.exact_tstep_log_likelihood(model, seqs, steps).exp()
    out = sampler.sample(model, n, steps=steps, seed=11)
    counts = torch.bincount(out.tokens[:, 0] * 4 + out.tokens[:, 1], minlength=16).double()
    expected = p * n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45.0  # χ²(15) exceeds 37.7 with probability 0.001


def test_float64_draw_and_filters(tiny_model):
    model = tiny_model(num_classes=20, length=3, ell=2)
    out = sampler.sample(model, 4, steps=6, seed=0, draw_dtype=torch.float64, temperature=0.7, top_p=0.9)
    assert bool((out.tokens < 20).all())
    greedy = sampler.sample(model, 4, steps=6, seed=0, top_p=1e-6)
    again = sampler.sample(model, 4, steps=6, seed=9, top_p=1e-6)
    assert torch.equal(greedy.tokens, sampler.sample(model, 4, steps=6, seed=0, top_p=1e-6).tokens)
    assert greedy.tokens.shape == again.tokens.shape
    sched = sampler.sample(model, 4, steps=6, seed=0, temperature=lambda t: 0.5 * t**2 + 0.5)
    assert bool((sched.tokens < 20).all())


def test_filter_log_probs():
    lp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = torch.isfinite(filter_log_probs(lp, 1.0, 0.75))
    assert kept.tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_log_probs(lp, 1.0, 1e-9)).sum() == 1
    hot = torch.softmax(filter_log_probs(lp, 2.0, 1.0), -1)
    assert float(hot[0, 3]) > 0.05
    with pytest.raises(ValueError, match="top_p"):
        filter_log_probs(lp, 1.0, 0.0)
    with pytest.raises(ValueError, match="temperature"):
        filter_log_probs(lp, 0.0, 1.0)


def test_sampler_idle_counts_match_closed_form(tiny_model):
    from prime_core.diffusion.idle import expected_idle_steps

    model = tiny_model(num_classes=9, length=3, ell=2, schedule="linear")
    out = sampler.sample(model, 400, steps=32, seed=5)
    expected = expected_idle_steps(model.schedule, 3, 2, 32)
    se = float(out.idle_steps.double().std()) / math.sqrt(400)
    assert float(out.idle_steps.double().mean()) == pytest.approx(expected, abs=4 * se)


def test_reveal_steps_follow_the_schedule():
    """A unit's planned reveal step is k with probability ᾱ_{k+1} − ᾱ_k (χ²), every unit gets a step < T, and a
    step whose ᾱ does not grow gets none."""
    from prime_core.sampling.ancestral import key_words, reveal_steps, row_seeds

    alphas = torch.tensor([0.0, 0.1, 0.1, 0.45, 0.8, 1.0], dtype=torch.float64)  # T = 5, step 1 reveals nothing
    keys = key_words(row_seeds(4000, 3))
    k = reveal_steps(keys, alphas, 3, 2).flatten()
    counts = torch.bincount(k, minlength=5).double()
    assert int(k.max()) < 5 and counts[1] == 0
    expected = (alphas[1:] - alphas[:-1]) * k.numel()
    keep = expected > 0
    chi2 = float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    assert chi2 < 18.5  # χ²(3) exceeds 16.3 with probability 0.001
    again = reveal_steps(keys[7:9], alphas, 3, 2).flatten()
    assert torch.equal(again, k.view(4000, 6)[7:9].flatten())  # keyed per row: batch-invariant
