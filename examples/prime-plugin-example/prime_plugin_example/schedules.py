"""A sigmoid noise schedule (DESIGN §2.2), rescaled to hit α₀ = 1 and α₁ = 0 exactly.

α_t = (σ(k(½ − t)) − σ(−k/2)) / (σ(k/2) − σ(−k/2)),   α′_t = −k σ(z)(1 − σ(z)) / (σ(k/2) − σ(−k/2)),  z = k(½ − t).
"""

from __future__ import annotations

import math

import torch

from prime_core import NoiseSchedule


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class SigmoidSchedule(NoiseSchedule):
    name = "example-sigmoid"

    def __init__(self, steepness: float = 6.0):
        self.steepness = float(steepness)
        if not self.steepness > 0:
            raise ValueError(f"steepness must be > 0, got {steepness}")
        self._lo = _sigmoid(-self.steepness / 2)
        self._span = _sigmoid(self.steepness / 2) - self._lo

    def alpha(self, t):
        return (torch.sigmoid(self.steepness * (0.5 - t)) - self._lo) / self._span

    def alpha_prime(self, t):
        s = torch.sigmoid(self.steepness * (0.5 - t))
        return -self.steepness * s * (1.0 - s) / self._span

    def weight(self, t):
        # 1 − α = (σ(k/2) − σ(z)) / span, so w = k σ(z)(1 − σ(z)) / (σ(k/2) − σ(z)); exact, no 1 − α cancellation
        s = torch.sigmoid(self.steepness * (0.5 - t))
        return self.steepness * s * (1.0 - s) / (_sigmoid(self.steepness / 2) - s)

    def params(self):
        return {"steepness": self.steepness}
