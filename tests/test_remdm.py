"""DESIGN §2.5 item 8: the ReMDM remasking sampler (`prime_core.sampling.remdm`)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prime_core import AncestralSampler
from prime_core.api import ConfidenceSampler, RemdmSampler, remask_reveal_probability, sigma_max
from prime_core.sampling.remdm import conf_sigma, loop_times, scalar_sigma

STRATEGY_OPTIONS = [{"strategy": "cap", "eta": 0.5}, {"strategy": "rescale", "eta": 0.7}, {"strategy": "conf"},
                    {"strategy": "constant", "eta": 0.05, "t_on": 0.7, "t_off": 0.2, "loop": True}]


def _remasked(trajectory, mask):
    """bool per step: some sub-token went from observed to the mask."""
    return [bool(((a != mask) & (b == mask)).any()) for a, b in zip(trajectory, trajectory[1:])]


@given(a_t=st.floats(0.0, 0.999), gap=st.floats(0.0, 1.0), frac=st.floats(0.0, 1.0))
def test_posterior_keeps_the_forward_marginal(a_t, gap, frac):
    """α_t(1 − σ) + (1 − α_t)·r = α_s for every σ ∈ [0, σ_max], and r ∈ [0, 1]."""
    a_s = a_t + gap * (1.0 - a_t)
    sigma = frac * sigma_max(a_t, a_s)
    r = remask_reveal_probability(a_t, a_s, sigma)
    assert 0.0 <= r <= 1.0
    assert a_t * (1.0 - sigma) + (1.0 - a_t) * r == pytest.approx(a_s, abs=1e-9)


def test_sigma_strategies_in_closed_form():
    a_t, a_s = 0.6, 0.7
    assert scalar_sigma("cap", 0.1, a_t, a_s) == 0.1
    assert scalar_sigma("cap", 0.9, a_t, a_s) == pytest.approx(0.3 / 0.6)  # capped at (1 − α_s)/α_t
    assert scalar_sigma("rescale", 0.5, a_t, a_s) == pytest.approx(0.5 * 0.5)
    assert scalar_sigma("constant", 0.2, a_t, a_s) == 0.2
    assert scalar_sigma("cap", 0.5, 0.9, 1.0) == 0.0  # the last step never re-masks
    conf = torch.tensor([[[0.9], [0.1], [0.5]]], dtype=torch.float64)
    decoded = torch.tensor([[[True], [True], [False]]])
    sig = conf_sigma(conf, decoded, 0.4)
    assert float(sig.sum()) == pytest.approx(0.4) and float(sig[0, 2, 0]) == 0.0
    assert float(sig[0, 1, 0]) > float(sig[0, 0, 0])  # the less confident unit is re-masked more often
    assert float(sig[0, 1, 0]) == pytest.approx(0.4 * torch.softmax(torch.tensor([-0.9, -0.1]), 0)[1].item())
    assert float(conf_sigma(conf, torch.zeros_like(decoded), 0.4).abs().sum()) == 0.0


@pytest.mark.parametrize("noise", ["independent", "grouped"])
def test_sigma_zero_equals_ancestral(tiny_model, noise):
    model = tiny_model(num_classes=20, length=4, ell=2, noise=noise)
    a = AncestralSampler().sample(model, 8, steps=16, seed=3, temperature=0.8, top_p=0.9)
    for sampler in (RemdmSampler(eta=0.0), RemdmSampler(strategy="rescale", eta=0.0),
                    RemdmSampler(eta=0.5, t_on=0.0 + 1e-9, t_off=0.0)):  # an empty window: never re-masks
        b = sampler.sample(model, 8, steps=16, seed=3, temperature=0.8, top_p=0.9)
        assert torch.equal(a.tokens, b.tokens) and torch.equal(a.nfe, b.nfe)
        assert torch.equal(a.idle_steps, b.idle_steps)


@pytest.mark.parametrize("options", STRATEGY_OPTIONS, ids=lambda o: o["strategy"])
@pytest.mark.parametrize("noise", ["independent", "grouped"])
def test_remasks_only_free_units_and_ends_valid(tiny_model, options, noise):
    model = tiny_model(num_classes=30, length=4, ell=3, noise=noise)  # b = 4, codes 30 … 63 invalid
    digits = torch.full((4, 3), -1)
    digits[1, 0] = 1  # token 1: leading digit fixed
    digits[3] = torch.tensor([0, 2, 3])  # token 3 fixed whole (= 11)
    out = RemdmSampler(**options).sample(model, 12, steps=24, seed=5, fixed_digits=digits, return_trajectory=True)
    mask = model.mask_id
    assert bool((out.tokens < 30).all()) and bool((out.tokens[:, 3] == 11).all())
    keep = digits >= 0
    prev = torch.full_like(out.trajectory[0], mask)
    for state in out.trajectory:
        assert bool((state[:, keep] == digits[keep]).all()), "a fixed digit was re-masked or changed"
        observed = prev != mask
        assert bool(((state == prev) | (state == mask))[observed].all()), "an observed digit changed value"
        if noise == "grouped":  # a token's free digits are masked together
            free = ~keep
            m = (state == mask) & free
            some_free = free.any(-1).expand_as(m[..., 0])
            assert bool((m.any(-1) == (m | ~free).all(-1))[some_free].all())
        prev = state
    assert not bool((out.trajectory[-1] == mask).any())
    assert any(_remasked(out.trajectory, mask)), "nothing was ever re-masked"
    assert bool((out.nfe + out.idle_steps <= 24).all())


@pytest.mark.parametrize("options", STRATEGY_OPTIONS, ids=lambda o: o["strategy"])
def test_batch_equals_members_and_chunking(tiny_model, options):
    model = tiny_model(num_classes=20, length=4, ell=2)
    sampler = RemdmSampler(**options)
    seeds = [11, 5, 2**40 + 3, 0, 9]
    batch = sampler.sample(model, 5, steps=20, seeds=seeds)
    alone = torch.cat([sampler.sample(model, 1, steps=20, seeds=[s]).tokens for s in seeds])
    assert torch.equal(batch.tokens, alone)
    chunked = sampler.sample(model, 5, steps=20, seeds=seeds, batch_size=2, cache=False)
    assert torch.equal(batch.tokens, chunked.tokens)
    again = sampler.sample(model, 5, steps=20, seeds=seeds)
    assert torch.equal(batch.tokens, again.tokens) and torch.equal(batch.idle_steps, again.idle_steps)
    assert bool((chunked.nfe == 20).all())  # cache=False: every row every step


def test_a_remasking_step_is_not_idle(tiny_model):
    model = tiny_model(num_classes=20, length=2, ell=2)
    plain = RemdmSampler(eta=0.0).sample(model, 64, steps=32, seed=1)
    remdm = RemdmSampler(strategy="rescale", eta=1.0).sample(model, 64, steps=32, seed=1, return_trajectory=True)
    assert bool((plain.nfe + plain.idle_steps == 32).all())
    only_remask = 32 - remdm.nfe - remdm.idle_steps
    assert int(only_remask.sum()) > 0  # steps that re-mask without revealing: neither idle nor evaluated
    mask = model.mask_id
    changed = torch.stack([(b != a).flatten(1).any(-1) for a, b in
                           zip([torch.full_like(remdm.trajectory[0], mask), *remdm.trajectory], remdm.trajectory)])
    assert torch.equal(remdm.idle_steps, (~changed).sum(0))  # idle = the state did not change


@pytest.mark.parametrize("options", [{"strategy": "cap", "eta": 0.3}, {"strategy": "rescale", "eta": 0.6}])
def test_observed_fraction_follows_alpha(tiny_model, options):
    """The posterior keeps q's marginal: after step k a unit is observed with probability ᾱ_{k+1}."""
    model = tiny_model(num_classes=20, length=4, ell=2)
    sampler = RemdmSampler(**options)
    steps, n = 8, 1500
    out = sampler.sample(model, n, steps=steps, seed=0, return_trajectory=True)
    _, alphas = sampler.step_grid(model, steps)
    for k, state in enumerate(out.trajectory[:-1]):
        frac = (state != model.mask_id).double().mean().item()
        se = (alphas[k + 1] * (1 - alphas[k + 1]) / (n * 8)).sqrt().item()
        assert abs(frac - float(alphas[k + 1])) < 6 * se + 0.01, (k, frac, float(alphas[k + 1]))


def test_loop_pauses_alpha_in_the_window(tiny_model):
    model = tiny_model(num_classes=20, length=4, ell=2, schedule="linear")
    sampler = RemdmSampler(strategy="constant", eta=0.05, t_on=0.5, t_off=0.25, loop=True, alpha_on=0.8)
    times, alphas = sampler.step_grid(model, 8)
    # ReMDM-loop, linear α: α rises to α_on by t_on, stays, then rises to 1
    assert alphas.tolist() == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 0.8, 0.8, 0.9, 1.0])
    assert [sampler.in_window(float(times[k]), float(times[k + 1])) for k in range(8)] == \
        [False] * 4 + [True, True] + [False] * 2
    u = loop_times(torch.tensor([1.0, 0.5, 0.3, 0.25, 0.0], dtype=torch.float64), 0.5, 0.25, 0.2)
    assert u.tolist() == pytest.approx([1.0, 0.2, 0.2, 0.2, 0.0])
    out = sampler.sample(model, 16, steps=8, seed=0, return_trajectory=True)
    assert any(_remasked(out.trajectory[4:6], model.mask_id) + _remasked(out.trajectory[3:6], model.mask_id))


def test_sigma_above_sigma_max_is_refused(tiny_model):
    model = tiny_model(num_classes=20, length=4, ell=2)
    with pytest.raises(ValueError, match="exceeds σ_max") as e:
        RemdmSampler(strategy="constant", eta=0.5).sample(model, 2, steps=8)  # the last step has σ_max = 0
    assert "\n" not in str(e.value)
    RemdmSampler(strategy="constant", eta=0.01, t_off=0.5).sample(model, 2, steps=8)  # inside σ_max: fine


@settings(max_examples=20, deadline=None)
@given(strategy=st.sampled_from(["cap", "rescale"]), eta=st.floats(0.0, 1.0), steps=st.integers(1, 10))
def test_every_strategy_keeps_probabilities_valid(registry, strategy, eta, steps):
    from prime_test_models import make_model

    model = make_model(registry, num_classes=7, length=2, ell=2, schedule="cosine")
    sampler = RemdmSampler(strategy=strategy, eta=eta)
    times, alphas = sampler.step_grid(model, steps)
    for k, sigma in enumerate(sampler.step_sigmas(times, alphas)):
        assert 0.0 <= sigma <= sigma_max(float(alphas[k]), float(alphas[k + 1])) + 1e-12
    assert bool((sampler.sample(model, 3, steps=steps, seed=1).tokens < 7).all())


@pytest.mark.parametrize("options, match", [
    ({"strategy": "greedy"}, "strategy must be one of"),
    ({"eta": 1.5}, r"eta must be a number in \[0.0, 1.0\]"),
    ({"strategy": "conf", "eta": 0.1}, "takes no eta"),
    ({"t_on": 0.2, "t_off": 0.5}, "t_off < t_on"),
    ({"loop": True}, "0 < t_off < t_on < 1"),
    ({"alpha_on": 0.5}, "loop=true"),
    ({"loop": "yes", "t_on": 0.5, "t_off": 0.1}, "loop must be"),
])
def test_bad_options_are_one_line(options, match):
    with pytest.raises(ValueError, match=match) as e:
        RemdmSampler(**options)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("make", [lambda: RemdmSampler(strategy="conf"), lambda: RemdmSampler(eta=0.3),
                                  lambda: ConfidenceSampler("margin")])
def test_sampling_options_and_cuda_parity(tiny_model, make):
    """τ(t), top-p and float64 noise reach the draw (same seed → same tokens; another τ → other tokens); on CUDA
    the keyed samples equal the CPU ones (skipped without a GPU)."""
    model = tiny_model(num_classes=20, length=4, ell=2)
    opts = dict(steps=10, seed=1, temperature=lambda t: 0.5 + t, top_p=0.95, draw_dtype=torch.float64)
    a = make().sample(model, 8, **opts)
    assert torch.equal(a.tokens, make().sample(model, 8, **opts).tokens) and bool((a.tokens < 20).all())
    assert not torch.equal(a.tokens, make().sample(model, 8, **{**opts, "temperature": 0.05}).tokens)
    if torch.cuda.is_available():
        gpu = make().sample(model.to("cuda"), 8, **opts)
        assert torch.equal(a.tokens, gpu.tokens) and torch.equal(a.nfe, gpu.nfe)
