"""Noise schedules α_t (DESIGN §2.2). Each defines α, α′ in closed form; w(t) = −α′/(1−α) comes from the base class.

All are strictly decreasing on [0, 1]. Names: linear (α = 1 − t), loglinear (MDLM's α = 1 − (1−δ)t),
cosine (α = cos(πt/2)), polynomial (α = 1 − tⁿ), power (the image convention α = (1 − t)ⁿ),
geometric (MDLM's σ_t = σ_min^(1−t) σ_max^t, α = e^(−σ_t)).
"""

from __future__ import annotations

import math

import torch

from ..interfaces import NoiseSchedule


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


class LinearSchedule(NoiseSchedule):
    """α_t = 1 − t, α′ = −1, w = 1/t."""

    name = "linear"

    def alpha(self, t):
        return 1.0 - t

    def alpha_prime(self, t):
        return -torch.ones_like(t)


class LogLinearSchedule(NoiseSchedule):
    """MDLM's log-linear schedule: σ_t = −log(1 − (1−δ)t), α_t = 1 − (1−δ)t, so α_1 = δ (default 1e-3)."""

    name = "loglinear"

    def __init__(self, delta: float = 1e-3):
        self.delta = float(delta)
        if not 0.0 <= self.delta < 1.0:
            raise ValueError(f"delta must lie in [0, 1), got {delta}")

    def alpha(self, t):
        return 1.0 - (1.0 - self.delta) * t

    def alpha_prime(self, t):
        return torch.full_like(t, -(1.0 - self.delta))

    def params(self):
        return {"delta": self.delta}


class CosineSchedule(NoiseSchedule):
    """α_t = cos(πt/2), α′ = −(π/2) sin(πt/2)."""

    name = "cosine"

    def alpha(self, t):
        return torch.cos(0.5 * math.pi * t)

    def alpha_prime(self, t):
        return -0.5 * math.pi * torch.sin(0.5 * math.pi * t)

    def weight(self, t):
        # −α′/(1−α) = (π/2) sin(πt/2) / (1 − cos(πt/2)) = (π/2) cot(πt/4): no cancellation near t = 0
        return 0.5 * math.pi / torch.tan(0.25 * math.pi * t)


class PolynomialSchedule(NoiseSchedule):
    """α_t = 1 − tⁿ, α′ = −n tⁿ⁻¹, w = n/t."""

    name = "polynomial"

    def __init__(self, exponent: float = 2.0):
        self.exponent = _positive("exponent", exponent)

    def alpha(self, t):
        return 1.0 - t**self.exponent

    def alpha_prime(self, t):
        return -self.exponent * t ** (self.exponent - 1.0)

    def weight(self, t):
        return self.exponent / t

    def params(self):
        return {"exponent": self.exponent}


class PowerSchedule(NoiseSchedule):
    """The image convention of the paper (α = t³ with time running the other way): α_t = (1 − t)ⁿ."""

    name = "power"

    def __init__(self, exponent: float = 3.0):
        self.exponent = _positive("exponent", exponent)

    def alpha(self, t):
        return (1.0 - t) ** self.exponent

    def alpha_prime(self, t):
        return -self.exponent * (1.0 - t) ** (self.exponent - 1.0)

    def params(self):
        return {"exponent": self.exponent}


class GeometricSchedule(NoiseSchedule):
    """σ_t = σ_min^(1−t) σ_max^t, α_t = exp(−σ_t), α′ = −σ_t log(σ_max/σ_min) α_t."""

    name = "geometric"

    def __init__(self, sigma_min: float = 1e-4, sigma_max: float = 20.0):
        self.sigma_min = _positive("sigma_min", sigma_min)
        self.sigma_max = _positive("sigma_max", sigma_max)
        if not self.sigma_max > self.sigma_min:
            raise ValueError(f"sigma_max must exceed sigma_min, got {sigma_max} ≤ {sigma_min}")

    def _sigma(self, t):
        return self.sigma_min ** (1.0 - t) * self.sigma_max**t

    def alpha(self, t):
        return torch.exp(-self._sigma(t))

    def alpha_prime(self, t):
        sigma = self._sigma(t)
        return -sigma * math.log(self.sigma_max / self.sigma_min) * torch.exp(-sigma)

    def weight(self, t):
        sigma = self._sigma(t)
        return sigma * math.log(self.sigma_max / self.sigma_min) / torch.expm1(sigma)

    def params(self):
        return {"sigma_min": self.sigma_min, "sigma_max": self.sigma_max}


BUILTIN_SCHEDULES = [LinearSchedule, LogLinearSchedule, CosineSchedule, PolynomialSchedule, PowerSchedule,
                     GeometricSchedule]
