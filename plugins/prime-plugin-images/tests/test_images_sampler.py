"""Image sampler controls: τ(t) schedule, timestep warp, re-masking corrector, imputation (DESIGN §2.5)."""

import pytest
import torch

from prime_core import AncestralSampler, PrimeError
from prime_plugin_images import ImageSampler, TemperatureSchedule, impute_digits
from prime_core.api import RemdmSampler, remask_reveal_probability
from prime_plugin_images.sampler import step_alphas, warped_grid
from prime_core.sampling.remdm import scalar_sigma


def test_defaults_reproduce_core_sampler(tiny_image_model):
    model = tiny_image_model()
    a = AncestralSampler().sample(model, 6, steps=12, seed=3, temperature=0.8)
    b = ImageSampler().sample(model, 6, steps=12, seed=3, temperature=0.8)
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.nfe, b.nfe)


def test_constant_schedule_equals_float_temperature(tiny_image_model):
    model = tiny_image_model()
    a = AncestralSampler().sample(model, 4, steps=10, seed=1, temperature=0.7)
    b = ImageSampler(temperature_schedule=[0.0, 1.0, 0.7]).sample(model, 4, steps=10, seed=1)
    assert torch.equal(a.tokens, b.tokens)


class Recording(TemperatureSchedule):
    def __init__(self, *abc):
        super().__init__(*abc)
        self.calls = []

    def __call__(self, t):
        tau = super().__call__(t)
        self.calls.append((t, tau))
        return tau


@pytest.mark.parametrize("warp", [1.0, 2.0])
def test_temperature_schedule_applied_at_grid_times(tiny_image_model, warp):
    model = tiny_image_model()
    sampler = ImageSampler(warp=warp)
    sampler.temperature_schedule = rec = Recording(0.5, 2.0, 0.25)
    sampler.sample(model, 3, steps=8, seed=0)
    grid = warped_grid(8, warp)[:-1].tolist()
    assert rec.calls, "τ(t) was never evaluated"
    for t, tau in rec.calls:
        assert min(abs(t - g) for g in grid) < 1e-12
        assert tau == pytest.approx(0.5 * t**2 + 0.25)
    # a low temperature late in sampling changes the samples
    hot = ImageSampler(temperature_schedule=[0.0, 1.0, 1.0]).sample(model, 8, steps=8, seed=0).tokens
    cold = ImageSampler(temperature_schedule=[1.0, 1.0, 0.05]).sample(model, 8, steps=8, seed=0).tokens
    assert not torch.equal(hot, cold)


def test_warp_grid_and_alphas(tiny_image_model):
    model = tiny_image_model()
    g = warped_grid(4, 2.0)
    assert g.tolist() == pytest.approx([1.0, 0.5625, 0.25, 0.0625, 0.0])
    a = step_alphas(model.schedule, 4, 2.0)
    assert a[0] == 0 and a[-1] == 1 and bool((a.diff() >= 0).all())
    assert torch.equal(step_alphas(model.schedule, 4, 1.0), model.schedule.step_alphas(4))
    out = ImageSampler(warp=2.0).sample(model, 4, steps=6, seed=0)
    assert out.tokens.shape == (4, 16) and bool((out.tokens < 16).all())


def test_corrector_marginal_and_never_leaves_masks(tiny_image_model):
    # after one corrected step a sub-token is observed with probability α_s
    for a_t, a_s, eta in [(0.3, 0.5, 0.2), (0.6, 0.65, 1.0), (0.0, 0.1, 0.5)]:
        sigma = scalar_sigma("cap", eta, a_t, a_s)
        r = remask_reveal_probability(a_t, a_s, sigma)
        assert a_t * (1 - sigma) + (1 - a_t) * r == pytest.approx(a_s)
    assert scalar_sigma("cap", 1.0, 0.9, 1.0) == 0.0  # the last step never re-masks
    model = tiny_image_model()
    out = ImageSampler(corrector=0.5).sample(model, 6, steps=16, seed=2, return_trajectory=True)
    mask = model.mask_id
    assert not bool((out.trajectory[-1] == mask).any())
    assert bool((out.tokens < model.num_classes).all())
    remasked = [bool(((a != mask) & (b == mask)).any()) for a, b in zip(out.trajectory, out.trajectory[1:])]
    assert any(remasked), "the corrector never re-masked anything"
    plain = ImageSampler().sample(model, 6, steps=16, seed=2, return_trajectory=True).trajectory
    assert not any(bool(((a != mask) & (b == mask)).any()) for a, b in zip(plain, plain[1:]))


@pytest.mark.parametrize("warp", [1.0, 1.5])
def test_corrector_is_remdm_cap(tiny_image_model, warp):
    """corrector=η is the core's ReMDM-cap: the same samples as remdm strategy=cap, eta=η on the same grid."""
    model = tiny_image_model()
    image = ImageSampler(corrector=0.3, warp=warp).sample(model, 6, steps=12, seed=4)
    assert torch.equal(image.tokens, ImageSampler(strategy="cap", eta=0.3, warp=warp).sample(
        model, 6, steps=12, seed=4).tokens)
    if warp == 1.0:
        remdm = RemdmSampler(strategy="cap", eta=0.3).sample(model, 6, steps=12, seed=4)
        assert torch.equal(image.tokens, remdm.tokens) and torch.equal(image.idle_steps, remdm.idle_steps)


def test_imputation_keeps_fixed_digits(tiny_image_model):
    model = tiny_image_model(ell=2, levels=16)
    real = torch.randint(0, 16, (5, 16), generator=torch.Generator().manual_seed(0))
    fixed = impute_digits(model, real, digits=(0,))  # the most significant digit of every pixel
    assert bool((fixed[..., 1] == -1).all()) and bool((fixed[..., 0] >= 0).all())
    for eta in (0.0, 0.7):
        out = ImageSampler(corrector=eta).sample(model, 5, steps=10, seed=0, fixed_digits=fixed,
                                                 return_trajectory=True)
        digits = model.map.encode(out.tokens)
        assert torch.equal(digits[..., 0], model.map.encode(real)[..., 0])
        for state in out.trajectory:  # never re-masked either
            assert torch.equal(state[..., 0], fixed[..., 0])
    left = torch.zeros(16, dtype=torch.bool)
    left[:8] = True
    fixed = impute_digits(model, real, digits=(0, 1), positions=left)
    out = ImageSampler().sample(model, 5, steps=10, seed=0, fixed_digits=fixed)
    assert torch.equal(out.tokens[:, :8], real[:, :8])
    with pytest.raises(PrimeError, match="digit indices"):
        impute_digits(model, real, digits=(2,))


@pytest.mark.parametrize("kwargs, match", [
    ({"temperature_schedule": [1.0, 1.0]}, r"\[a, b, c\]"),
    ({"temperature_schedule": [-1.0, 1.0, 0.5]}, "must be > 0"),
    ({"warp": 0}, "warp"),
    ({"corrector": 1.5}, "corrector"),
    ({"corrector": 0.1, "eta": 0.2}, "either corrector or strategy"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(PrimeError, match=match) as e:
        ImageSampler(**kwargs)
    assert "\n" not in str(e.value)
