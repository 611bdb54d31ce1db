"""Idle steps (the paper's Proposition A.1, DESIGN §2.6).

A step [s, t] is idle iff no unit is revealed in it. Each of the N = L·ℓ sub-tokens is revealed in step k with
probability ᾱ_{k+1} − ᾱ_k, independently, so P(idle_k) = (1 − (ᾱ_{k+1} − ᾱ_k))^N and
E[#idle] = Σ_k (1 − (ᾱ_{k+1} − ᾱ_k))^N. Linear α, T = L uniform steps: ≈ T·e^(−ℓ).
"""

from __future__ import annotations

import attrs
import torch

from ..interfaces import NoiseSchedule


def expected_idle_steps(schedule: NoiseSchedule, length: int, ell: int, steps: int) -> float:
    """E[#idle steps] for N = L·ℓ independently revealed sub-tokens over the T-step grid."""
    alphas = schedule.step_alphas(steps)
    per_step = (1.0 - alphas.diff()).clamp_min(0.0)
    return float(torch.exp(length * ell * torch.log(per_step)).sum())


def simulate_idle_steps(schedule: NoiseSchedule, length: int, ell: int, steps: int, runs: int = 100,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Idle-step counts of `runs` simulated reveal processes: each sub-token draws the step it is revealed in
    from the categorical (ᾱ_{k+1} − ᾱ_k)_k. Returns [runs] (float64)."""
    probs = schedule.step_alphas(steps).diff().clamp_min(0.0)
    n = length * ell
    out = torch.empty(runs, dtype=torch.float64)
    for r in range(runs):
        step_of = torch.multinomial(probs, n, replacement=True, generator=generator)
        out[r] = float((torch.bincount(step_of, minlength=steps) == 0).sum())
    return out


@attrs.frozen
class IdleReport:
    length: int
    ell: int
    steps: int
    schedule: str
    runs: int
    expected_idle_steps: float
    simulated_idle_steps: float
    simulated_stderr: float

    @property
    def expected_idle_ratio(self) -> float:
        return self.expected_idle_steps / self.steps

    @property
    def simulated_idle_ratio(self) -> float:
        return self.simulated_idle_steps / self.steps

    def to_json(self) -> dict:
        d = attrs.asdict(self)
        d.update(expected_idle_ratio=self.expected_idle_ratio, simulated_idle_ratio=self.simulated_idle_ratio)
        return d


def idle_report(schedule: NoiseSchedule, schedule_name: str, length: int, ell: int, steps: int, runs: int = 100,
                seed: int = 0) -> IdleReport:
    sims = simulate_idle_steps(schedule, length, ell, steps, runs, torch.Generator().manual_seed(seed))
    stderr = float(sims.std() / runs**0.5) if runs > 1 else float("nan")
    return IdleReport(length, ell, steps, schedule_name, runs, expected_idle_steps(schedule, length, ell, steps),
                      float(sims.mean()), stderr)
