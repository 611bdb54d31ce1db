"""Image sampler controls (DESIGN §2.5, "image extras"): a temperature schedule, a timestep warp, a re-masking
corrector, and imputation, on top of the core's ancestral sub-token sampler (its loop, keyed noise and idle-step
cache; this module only changes the grid and the per-step probabilities).

- Temperature schedule τ(t) = a·t^b + c, applied to log p_θ at the step's time t (t = 1 first, → 0 last).
- Timestep warp γ > 0: the grid t_k = (1 − k/T)^γ replaces t_k = 1 − k/T, with ᾱ_k = α(t_k) (clamped so ᾱ_0 = 0,
  ᾱ_T = 1). γ > 1 spends more steps at small t (late, detailed reveals), γ < 1 more at large t.
- Re-masking corrector (ReMDM-style, strength η ∈ [0, 1]): in the step from ᾱ_k to ᾱ_{k+1} every observed,
  non-fixed sub-token is re-masked with probability σ_k = min(η, (1 − ᾱ_{k+1})/ᾱ_k), and a masked one is revealed
  with probability (ᾱ_{k+1} − (1 − σ_k)ᾱ_k)/(1 − ᾱ_k), so a sub-token is still observed with marginal
  probability ᾱ_{k+1} after the step. σ = 0 in the last step (ᾱ_T = 1), which fills every mask.
- Imputation: fixed digits (core ``fixed_digits``, −1 = free) are kept; `impute_digits` builds them from real images.

With η = 0, γ = 1 and a constant τ this is exactly the core's `AncestralSampler` (same draws, same samples).
"""

from __future__ import annotations

import torch

from prime_core import AncestralSampler, PrimeError, SampleResult
from prime_core.api import reveal_probability


class TemperatureSchedule:
    """τ(t) = a·t^b + c (must stay > 0 on [0, 1])."""

    def __init__(self, a: float, b: float, c: float):
        self.a, self.b, self.c = float(a), float(b), float(c)
        if self.b < 0:
            raise PrimeError(f"temperature schedule exponent b must be ≥ 0, got {b}")
        if min(self.c, self.a + self.c) <= 0:
            raise PrimeError(f"temperature schedule τ(t) = {a}·t^{b} + {c} must be > 0 on [0, 1]")

    def __call__(self, t: float) -> float:
        return self.a * float(t) ** self.b + self.c

    def __repr__(self) -> str:
        return f"τ(t) = {self.a}·t^{self.b} + {self.c}"


def warped_grid(steps: int, warp: float = 1.0) -> torch.Tensor:
    """t_k = (1 − k/T)^γ, k = 0 … T (float64)."""
    return (1.0 - torch.arange(steps + 1, dtype=torch.float64) / steps) ** warp


def step_alphas(schedule, steps: int, warp: float = 1.0) -> torch.Tensor:
    """ᾱ_k = α(t_k) on the warped grid, clamped to ᾱ_0 = 0, ᾱ_T = 1 and made monotone (as the core does)."""
    if warp == 1.0:
        return schedule.step_alphas(steps)
    a = schedule.alpha(warped_grid(steps, warp)).to(torch.float64).clone()
    a[0], a[-1] = 0.0, 1.0
    return torch.cummax(a.clamp(0.0, 1.0), 0).values


def remask_probability(alpha_t: float, alpha_s: float, eta: float) -> float:
    """σ = min(η, (1 − α_s)/α_t) (0 when α_t = 0)."""
    if eta <= 0 or alpha_t <= 0:
        return 0.0
    return float(min(eta, (1.0 - alpha_s) / alpha_t))


def corrected_reveal_probability(alpha_t: float, alpha_s: float, sigma: float) -> float:
    """(α_s − (1 − σ)α_t)/(1 − α_t): keeps P(observed after the step) = α_s."""
    if alpha_t >= 1.0:
        return 1.0
    return float(min(1.0, max(0.0, (alpha_s - (1.0 - sigma) * alpha_t) / (1.0 - alpha_t))))


class ImageSampler(AncestralSampler):
    """The ancestral sampler with the controls above. Constructor options (config ``[sample] options`` or
    ``prime sample --option KEY=VALUE``): temperature_schedule = [a, b, c], warp = γ, corrector = η."""

    name = "image"

    def __init__(self, temperature_schedule=None, warp: float = 1.0, corrector: float = 0.0):
        if temperature_schedule is not None:
            if not (isinstance(temperature_schedule, (list, tuple)) and len(temperature_schedule) == 3):
                raise PrimeError(f"temperature_schedule must be [a, b, c] for τ(t) = a·t^b + c, "
                                 f"got {temperature_schedule!r}")
            temperature_schedule = TemperatureSchedule(*temperature_schedule)
        if not isinstance(warp, (int, float)) or warp <= 0:
            raise PrimeError(f"warp γ must be a number > 0 (grid t_k = (1 − k/T)^γ), got {warp!r}")
        if not isinstance(corrector, (int, float)) or not 0.0 <= corrector <= 1.0:
            raise PrimeError(f"corrector η must lie in [0, 1], got {corrector!r}")
        self.temperature_schedule = temperature_schedule
        self.warp, self.corrector = float(warp), float(corrector)

    def sample(self, model, num_samples: int, **options) -> SampleResult:
        """As `AncestralSampler.sample`; a configured temperature schedule replaces ``temperature``."""
        if self.temperature_schedule is not None:
            options["temperature"] = self.temperature_schedule
        return super().sample(model, num_samples, **options)

    def step_grid(self, model, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The warped grid t_k = (1 − k/T)^γ and ᾱ_k = α(t_k)."""
        return warped_grid(steps, self.warp), step_alphas(model.schedule, steps, self.warp)

    def step_probabilities(self, alpha_t: float, alpha_s: float) -> tuple[float, float]:
        """(r, σ) of the corrector: σ = min(η, (1 − ᾱ_s)/ᾱ_t), r keeps P(observed after the step) = ᾱ_s."""
        sigma = remask_probability(alpha_t, alpha_s, self.corrector)
        if not sigma:
            return reveal_probability(alpha_t, alpha_s), 0.0
        return corrected_reveal_probability(alpha_t, alpha_s, sigma), sigma


def impute_digits(model, tokens: torch.Tensor, digits=(0,), positions: torch.Tensor | None = None) -> torch.Tensor:
    """Constraints for image imputation: fixed_digits [N, L, ℓ] holding the real images' digits j ∈ ``digits``
    (0 = most significant) at ``positions`` (bool [L], default every pixel-channel), −1 elsewhere."""
    y0 = model.encode(tokens)
    bad = [j for j in digits if not 0 <= int(j) < model.ell]
    if bad:
        raise PrimeError(f"digit indices must lie in [0, {model.ell - 1}] (ℓ={model.ell}), got {bad}")
    keep = torch.zeros_like(y0, dtype=torch.bool)
    keep[..., list(digits)] = True
    if positions is not None:
        keep &= positions.view(1, -1, 1).to(torch.bool)
    return torch.where(keep, y0, torch.full_like(y0, -1))


BUILTIN_IMAGE_SAMPLERS = [ImageSampler]
