"""ReMDM: remasking sampler for any backbone (DESIGN §2.5 item 8; Wang et al. 2025, "Remasking Discrete Diffusion
Models with Inference-Time Scaling", arXiv:2503.00307).

ReMDM's reverse step from t to s < t lets an observed unit go back to the mask. On the T-step grid (ᾱ_k = α(t_k),
step k from α_t = ᾱ_k to α_s = ᾱ_{k+1}) every reveal unit — a sub-token (independent noise; a re-masked digit
goes back to the mask symbol m) or a token (grouped noise) — follows ReMDM's posterior:
    observed free unit:  re-masked with probability σ_t, kept with 1 − σ_t;
    masked unit:         revealed (digits from f(x̂), x̂ ~ p_θ(· | y_t)) with r_t = (α_s − (1 − σ_t)α_t)/(1 − α_t).
Then P(unit observed after the step) = α_t(1 − σ_t) + (1 − α_t)r_t = α_s: the forward marginals are kept.
r_t ∈ [0, 1] iff 0 ≤ σ_t ≤ σ_max(t) = min(1, (1 − α_s)/α_t) (σ_max = 1 at α_t = 0); a σ_t above it is refused
before sampling. Digits fixed by the prompt / infill (``fixed_tokens``, ``fixed_digits``) are never re-masked.
σ_t = 0 is the ancestral sampler (same keyed draws: the same samples as ``ancestral`` for the same seed).

σ strategies (option ``strategy``, strength ``eta`` = η):
    cap       σ_t = min(η, (1 − α_s)/α_t)                                   (ReMDM-cap; η ∈ [0, 1])
    rescale   σ_t = η·σ_max(t)                                              (ReMDM-rescale; η ∈ [0, 1])
    conf      σ_{t,u} = η_u·σ_max(t), η_u = softmax over the observed free units of −c_u, c_u the confidence
              (`prime_core.sampling.unit_confidence`, ``prob``: the probability of the unit's drawn value) recorded when u
              was revealed: less confident units are re-masked more often; Σ_u σ_{t,u} = σ_max. A masked unit has
              η_u = 0, so it is revealed with r_t = (α_s − α_t)/(1 − α_t), as in ReMDM's code. (η is not used.)
    constant  σ_t = η, refused where η > σ_max(t) (ReMDM-loop's σ in its loop phase)
Time window (ReMDM-switch / ReMDM-loop): re-masking acts only in the steps that lie inside [t_off, t_on]
(t_k ≤ t_on and t_{k+1} ≥ t_off; defaults 1 and 0: every step). With ``loop=True`` the schedule is paused there:
schedule time u(t) = u_on + (t − t_on)(1 − u_on)/(1 − t_on) for t ≥ t_on, u_on on [t_off, t_on], t·u_on/t_off for
t ≤ t_off, with α(u_on) = α_on (option ``alpha_on``, default α(t_on)); the grid is ᾱ_k = α(u(t_k)). So α rises to
α_on by t_on, stays there while units are re-masked and revealed again (α_s = α_t = α_on: r = σα_on/(1 − α_on)),
then rises to 1. For the linear schedule this is exactly ReMDM-loop's three phases.

NFE counts the forward passes: a row is evaluated in a step only when it reveals something (re-masking needs no
p_θ). A step is idle when the row's state does not change: nothing revealed and nothing re-masked. Randomness is
the keyed Philox of `prime_core.sampling.counter_rng` (reveal uniforms: stream REVEAL, re-mask uniforms: REMASK, x̂: the
sampler's `reveal`), so a batch equals its members sampled one by one and chunking / caching change nothing.
"""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm

from .counter_rng import REMASK
from .ancestral import (AncestralSampler, Step, check_temperature, finish, for_rows, reveal_probability,
                        reveal_uniforms)
from .unit_confidence import reveal_with_log_probs, unit_confidence

STRATEGIES = ("cap", "rescale", "conf", "constant")
DEFAULT_ETA = 0.02


def sigma_max(alpha_t: float, alpha_s: float) -> float:
    """σ_max(t) = min(1, (1 − α_s)/α_t) (1 at α_t = 0): the largest σ_t that keeps r_t ≤ 1."""
    return 1.0 if alpha_t <= 0 else min(1.0, (1.0 - alpha_s) / alpha_t)


def remask_reveal_probability(alpha_t: float, alpha_s: float, sigma: float) -> float:
    """r_t = (α_s − (1 − σ)α_t)/(1 − α_t): a masked unit's reveal probability under ReMDM's posterior
    (the ancestral r = (α_s − α_t)/(1 − α_t) when σ = 0; 1 when α_t = 1)."""
    if not sigma:
        return reveal_probability(alpha_t, alpha_s)
    return min(1.0, max(0.0, (alpha_s - (1.0 - sigma) * alpha_t) / (1.0 - alpha_t)))


def scalar_sigma(strategy: str, eta: float, alpha_t: float, alpha_s: float) -> float:
    """σ_t of the strategies that give every unit the same σ (module docstring); 0 at α_t = 0 (nothing observed
    but fixed units, which are never re-masked) and 0 for ``conf`` (per unit, see `conf_sigma`)."""
    if alpha_t <= 0 or strategy == "conf":
        return 0.0
    if strategy == "cap":
        return min(eta, (1.0 - alpha_s) / alpha_t)
    if strategy == "rescale":
        return eta * sigma_max(alpha_t, alpha_s)
    return eta  # constant


def conf_sigma(confidence: torch.Tensor, decoded: torch.Tensor, smax: float) -> torch.Tensor:
    """σ_{t,u} = σ_max·softmax_u(−c_u) over the decoded (observed free) units of each row, 0 elsewhere.
    confidence, decoded [n, L, U]."""
    n = len(confidence)
    logits = torch.where(decoded, -confidence, torch.full_like(confidence, float("-inf"))).view(n, -1)
    weights = torch.softmax(logits, -1).nan_to_num(0.0)  # a row with nothing decoded: all −inf → 0
    return (smax * weights).view_as(confidence)


def loop_times(t: torch.Tensor, t_on: float, t_off: float, u_on: float) -> torch.Tensor:
    """The schedule time u(t) of the loop (module docstring): α(u(t)) rises to α_on, pauses, rises to 1."""
    rise = u_on + (t - t_on) * (1.0 - u_on) / (1.0 - t_on)
    finish_ = t * u_on / t_off
    return torch.where(t >= t_on, rise, torch.where(t <= t_off, finish_, torch.full_like(t, u_on)))


def clamped_alphas(schedule, times: torch.Tensor) -> torch.Tensor:
    """ᾱ_k = α(times_k) in float64, clamped so ᾱ_0 = 0 and ᾱ_T = 1 and made monotone (as `step_alphas`)."""
    a = schedule.alpha(times).to(torch.float64).clone()
    a[0], a[-1] = 0.0, 1.0
    return torch.cummax(a.clamp(0.0, 1.0), 0).values


def _number(name: str, value, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


class RemdmSampler(AncestralSampler):
    """ReMDM (module docstring), registered as ``remdm``. Constructor options (config ``[sample] options`` or
    ``prime sample --option KEY=VALUE``):

    strategy: "cap" (default), "rescale", "conf" or "constant"; eta: η ∈ [0, 1] (default 0.02; not for "conf");
    t_on, t_off: the re-masking window, 0 ≤ t_off < t_on ≤ 1 (default the whole run); loop: pause the schedule in
    the window (needs 0 < t_off < t_on < 1); alpha_on: α_on ∈ (0, 1) for the loop (default α(t_on))."""

    name = "remdm"
    progress_label = "sampling (remdm)"
    remasking = True  # conformance: observed sub-tokens may return to the mask (never to another digit)

    def __init__(self, strategy: str = "cap", eta: float | None = None, t_on: float = 1.0, t_off: float = 0.0,
                 loop: bool = False, alpha_on: float | None = None):
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
        if strategy == "conf" and eta is not None:
            raise ValueError("strategy=conf takes no eta (σ_u = σ_max·softmax(−confidence)); leave eta out")
        self.strategy = strategy
        self.eta = _number("eta", DEFAULT_ETA if eta is None else eta, 0.0, 1.0)
        self.t_on, self.t_off = _number("t_on", t_on, 0.0, 1.0), _number("t_off", t_off, 0.0, 1.0)
        if not self.t_off < self.t_on:
            raise ValueError(f"the re-masking window needs t_off < t_on, got t_off={t_off}, t_on={t_on}")
        if not isinstance(loop, bool):
            raise ValueError(f"loop must be true or false, got {loop!r}")
        if loop and not 0.0 < self.t_off < self.t_on < 1.0:
            raise ValueError(f"loop=true needs 0 < t_off < t_on < 1, got t_off={t_off}, t_on={t_on}")
        if alpha_on is not None and not loop:
            raise ValueError("alpha_on sets the loop's constant α: pass it with loop=true")
        self.loop = loop
        self.alpha_on = None if alpha_on is None else _number("alpha_on", alpha_on, 1e-9, 1.0 - 1e-9)

    # ------------------------------------------------------------------------------------------- the grid
    def grid_times(self, steps: int) -> torch.Tensor:
        """t_k = 1 − k/T, k = 0 … T (float64); subclasses may warp it."""
        return 1.0 - torch.arange(steps + 1, dtype=torch.float64) / steps

    def step_grid(self, model, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(t_k, ᾱ_k): ᾱ_k = α(t_k), or α(u(t_k)) with the loop (module docstring)."""
        times = self.grid_times(steps)
        if not self.loop:
            plain = torch.equal(times, 1.0 - torch.arange(steps + 1, dtype=torch.float64) / steps)
            return times, model.schedule.step_alphas(steps) if plain else clamped_alphas(model.schedule, times)
        a_on = self.alpha_on if self.alpha_on is not None else float(model.schedule.alpha(
            torch.tensor([self.t_on], dtype=torch.float64))[0])
        u_on = float(model.schedule.inverse_alpha(torch.tensor([a_on], dtype=torch.float64))[0])
        return times, clamped_alphas(model.schedule, loop_times(times, self.t_on, self.t_off, u_on))

    def in_window(self, t: float, s: float) -> bool:
        """Whether step [s, t] lies inside the re-masking window [t_off, t_on]."""
        return t <= self.t_on + 1e-12 and s >= self.t_off - 1e-12

    def step_sigmas(self, times: torch.Tensor, alphas: torch.Tensor) -> list[float]:
        """σ_k of every step (0 outside the window; ``conf`` keeps 0 here, its σ is per unit), each checked
        against σ_max so that r_k ∈ [0, 1]: a bad σ is refused before any sampling."""
        out = []
        for k in range(len(times) - 1):
            t, s, a_t, a_s = float(times[k]), float(times[k + 1]), float(alphas[k]), float(alphas[k + 1])
            sigma = scalar_sigma(self.strategy, self.eta, a_t, a_s) if self.in_window(t, s) else 0.0
            smax = sigma_max(a_t, a_s)
            if sigma > smax + 1e-12:
                raise ValueError(f"remdm: σ = {sigma:.4g} exceeds σ_max = min(1, (1 − α_s)/α_t) = {smax:.4g} in "
                                 f"step {k} (t = {t:.4g}, α_t = {a_t:.4g}, α_s = {a_s:.4g}); σ must lie in "
                                 f"[0, σ_max]: lower eta, narrow the window (t_off) or use strategy=cap")
            out.append(min(sigma, smax))
        return out

    # ------------------------------------------------------------------------------------------- the loop
    def _sample_batch(self, model, y, keys, steps, temperature, top_p, draw_dtype, cache, return_trajectory,
                      progress):
        times, alphas = self.step_grid(model, steps)
        sigmas = self.step_sigmas(times, alphas)
        if self.strategy != "conf" and not any(sigmas):  # nothing is ever re-masked: the ancestral loop exactly
            return super()._sample_batch(model, y, keys, steps, temperature, top_p, draw_dtype, cache,
                                         return_trajectory, progress)
        n, length, ell = y.shape
        units = 1 if model.grouped else ell
        fixed = y != model.mask_id  # prefix / infill constraints: never re-masked
        free_unit = (~fixed).view(n, length, units, -1).any(-1)
        confidence = torch.zeros(n, length, units, dtype=torch.float64, device=y.device)
        nfe = torch.zeros(n, dtype=torch.long, device=y.device)
        idle = torch.zeros(n, dtype=torch.long, device=y.device)
        calls, trajectory = 0, []
        for k in tqdm(range(steps), disable=not progress, desc=self.progress_label, leave=False):
            t, a_t, a_s = float(times[k]), float(alphas[k]), float(alphas[k + 1])
            masked = y == model.mask_id
            unit_masked = masked.view(n, length, units, -1).any(-1)
            r = remask_reveal_probability(a_t, a_s, sigmas[k])
            draws = reveal_uniforms(keys, k, length, units)  # [n, L, U]
            reveal = masked & (draws < r).expand(n, length, ell)
            sigma = self._unit_sigma(sigmas[k], confidence, free_unit & ~unit_masked, t, float(times[k + 1]),
                                     a_t, a_s)
            remask = self._remask(keys, k, sigma, free_unit & ~unit_masked, fixed, ell)
            active = reveal.flatten(1).any(-1)
            idle += ~(active | remask.flatten(1).any(-1))
            rows = None if not cache or bool(active.all()) else active.nonzero().squeeze(-1)
            if rows is None or len(rows):
                tau = check_temperature(temperature(t) if callable(temperature) else temperature, t)
                step = Step(t, a_t, a_s, r, tau, top_p, draw_dtype, k)
                idx = torch.arange(n, device=y.device) if rows is None else rows
                y[idx], conf = self._reveal_rows(for_rows(model, idx), y[idx], reveal[idx], draws[idx], keys[idx], step)
                if conf is not None:
                    confidence[idx] = torch.where(reveal[idx].view(len(idx), length, units, -1).any(-1), conf,
                                                  confidence[idx])
                nfe[idx] += 1
                calls += 1
            y[remask] = model.mask_id
            if return_trajectory:
                trajectory.append(y.to("cpu", copy=True))
        return finish(self.name, model, y, nfe, idle, steps, calls, trajectory if return_trajectory else None)

    def _unit_sigma(self, sigma: float, confidence, decoded, t: float, s: float, a_t: float, a_s: float):
        """σ of this step: the strategy's number, or the per-unit [n, L, U] σ of ``conf`` (inside the window)."""
        if self.strategy != "conf" or not self.in_window(t, s) or a_t <= 0:
            return sigma
        return conf_sigma(confidence, decoded, sigma_max(a_t, a_s))

    @staticmethod
    def _remask(keys, k: int, sigma, decoded, fixed, ell: int) -> torch.Tensor:
        """[n, L, ℓ]: the free digits of the observed free units whose REMASK uniform falls below σ."""
        n, length, units = decoded.shape
        if not torch.is_tensor(sigma) and not sigma:
            return torch.zeros(n, length, ell, dtype=torch.bool, device=decoded.device)
        back = reveal_uniforms(keys, k, length, units, REMASK)
        return (decoded & (back < sigma)).unsqueeze(-1).expand(n, length, units, ell // units) \
            .reshape(n, length, ell) & ~fixed

    def _reveal_rows(self, model, y, reveal, draws, keys, step):
        """(y_s, confidence [m, L, U] of the units drawn, or None): the sampler's own `reveal`; ``conf`` also
        records the probability of each revealed unit's value."""
        if self.strategy != "conf":
            return self.reveal(model, y, reveal, draws, keys, step), None
        y_s, log_p = reveal_with_log_probs(self, model, y, reveal, draws, keys, step)
        if log_p is None:
            return y_s, None
        m, length, ell = y.shape
        pos = reveal.any(-1)
        conf = torch.zeros(m, length, 1 if model.grouped else ell, dtype=torch.float64, device=y.device)
        conf[pos] = unit_confidence(log_p, y_s[pos], model.map, model.grouped, "prob")
        return y_s, conf


BUILTIN_REMDM = [RemdmSampler]
