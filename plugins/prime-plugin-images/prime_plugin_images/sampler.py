"""Image sampler controls (DESIGN §2.5, "image extras"): a temperature schedule, a timestep warp, a re-masking
corrector, and imputation, on top of the core's ReMDM sampler `remdm` (its loop, keyed noise, idle-step cache and
σ strategies; this module only changes the grid times and the temperature).

- Temperature schedule τ(t) = a·t^b + c, applied to log p_θ at the step's time t (t = 1 first, → 0 last).
- Timestep warp γ > 0: the grid t_k = (1 − k/T)^γ replaces t_k = 1 − k/T, with ᾱ_k = α(t_k) (clamped so ᾱ_0 = 0,
  ᾱ_T = 1). γ > 1 spends more steps at small t (late, detailed reveals), γ < 1 more at large t.
- Re-masking corrector, strength η ∈ [0, 1]: ReMDM-cap (`prime_core.api.RemdmSampler`, strategy ``cap``): every
  observed, non-fixed sub-token is re-masked with σ_k = min(η, (1 − ᾱ_{k+1})/ᾱ_k) and a masked one revealed with
  (ᾱ_{k+1} − (1 − σ_k)ᾱ_k)/(1 − ᾱ_k). ``corrector=η`` is shorthand for ``strategy="cap", eta=η``; every other
  ReMDM option (strategy, eta, t_on, t_off, loop, alpha_on) is accepted too.
- Imputation: fixed digits (core ``fixed_digits``, −1 = free) are kept; `impute_digits` builds them from real images.

With η = 0, γ = 1 and a constant τ this is exactly the core's `AncestralSampler` (same draws, same samples).
"""

from __future__ import annotations

import torch

from prime_core import PrimeError, SampleResult
from prime_core.api import RemdmSampler


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


class ImageSampler(RemdmSampler):
    """The ReMDM sampler with the controls above. Constructor options (config ``[sample] options`` or
    ``prime sample --option KEY=VALUE``): temperature_schedule = [a, b, c], warp = γ, corrector = η (ReMDM-cap),
    or any `RemdmSampler` option. Defaults: no re-masking (η = 0)."""

    name = "image"

    def __init__(self, temperature_schedule=None, warp: float = 1.0, corrector: float | None = None,
                 **remdm_options):
        if temperature_schedule is not None:
            if not (isinstance(temperature_schedule, (list, tuple)) and len(temperature_schedule) == 3):
                raise PrimeError(f"temperature_schedule must be [a, b, c] for τ(t) = a·t^b + c, "
                                 f"got {temperature_schedule!r}")
            temperature_schedule = TemperatureSchedule(*temperature_schedule)
        if isinstance(warp, bool) or not isinstance(warp, (int, float)) or warp <= 0:
            raise PrimeError(f"warp γ must be a number > 0 (grid t_k = (1 − k/T)^γ), got {warp!r}")
        if corrector is not None:
            if isinstance(corrector, bool) or not isinstance(corrector, (int, float)) or not 0.0 <= corrector <= 1.0:
                raise PrimeError(f"corrector η must lie in [0, 1], got {corrector!r}")
            if {"strategy", "eta"} & remdm_options.keys():
                raise PrimeError("corrector=η is strategy=cap with eta=η: give either corrector or strategy/eta")
            remdm_options = {**remdm_options, "strategy": "cap", "eta": corrector}
        remdm_options.setdefault("eta", 0.0 if remdm_options.get("strategy", "cap") != "conf" else None)
        super().__init__(**remdm_options)
        self.temperature_schedule = temperature_schedule
        self.warp = float(warp)

    def sample(self, model, num_samples: int, **options) -> SampleResult:
        """As `RemdmSampler.sample`; a configured temperature schedule replaces ``temperature``."""
        if self.temperature_schedule is not None:
            options["temperature"] = self.temperature_schedule
        return super().sample(model, num_samples, **options)

    def grid_times(self, steps: int) -> torch.Tensor:
        """The warped grid t_k = (1 − k/T)^γ."""
        return warped_grid(steps, self.warp)


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
