"""Losses and likelihood bounds (DESIGN §2.4). Each function returns one estimate per sequence [B], in nats.

Valid upper bounds on −log p_θ(x) (safe to report as NLL / PPL / BPD):
- `nelbo`: the continuous-time NELBO over the L·ℓ sub-tokens, using marginals of the joint,
      ∫₀¹ w(t) E_q[Σ_{masked units u} −log p_θ(y₀ᵘ | y_t)] dt,   w = −α′/(1−α).
  Substituting a = α_t and summing over the number m of masked units gives the equivalent, schedule-free form
      N · E_{m ~ U{1..N}} E_{a ~ Beta(N−m+1, m)} E_{M ⊂ units, |M| = m} [mean_{u ∈ M} −log p_θ(y₀ᵘ | y_M̄, t(a))],
  which `nelbo` samples: unbiased over the whole of (0, 1] (no ε cut) with bounded variance.
- `tstep_nelbo`: the T-step bound of the T-step sampler: per step, per token, −log of the joint probability of
  the subset of its digits revealed in that step.
Training objectives (never reported as likelihoods):
- `training_nelbo`: MDLM's estimator of the same integral on t ∈ [ε, 1] (w(t)-weighted, antithetic times).
- `joint_loss`: the paper's w(t) Σ_{tokens with a masked digit} −log p_θ(x₀ⁱ | y_t). With a dependent joint it
  is not a bound and can fall below the data entropy (DESIGN §1).
A unit is a sub-token under independent noise and a whole token under grouped noise.
"""

from __future__ import annotations


import torch

from .forward import apply_mask, sample_mask
from .unit_losses import (expected_reveal_nll, step_reveal_log_probs, touched_nll,  # noqa: F401 (also public here)
                          touched_unit_nll, unit_nll)


def _num_units(model) -> int:
    return model.length * (1 if model.grouped else model.ell)


def _mask_of_size(batch: int, model, counts: torch.Tensor, generator, device) -> torch.Tensor:
    """A uniformly random set of exactly counts[b] masked units per row, as a [B, L, ℓ] bool mask."""
    n_units = _num_units(model)
    ranks = torch.rand(batch, n_units, generator=generator).argsort(-1).argsort(-1).to(device)
    units = ranks < counts.to(device).unsqueeze(-1)
    if model.grouped:
        return units.view(batch, model.length, 1).expand(batch, model.length, model.ell)
    return units.view(batch, model.length, model.ell)


def nelbo(model, tokens: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Valid continuous-time NELBO, one unbiased estimate per row (see module docstring)."""
    if is_block_model(model):  # Σₖ NELBO(block k | clean blocks < k), DESIGN §2.8
        return _blocks().block_nelbo(model, tokens, generator=generator)
    y0 = model.encode(tokens)
    batch, n_units = tokens.shape[0], _num_units(model)
    # stratified mask counts m ∈ {1 … N}
    u = (torch.rand(1, generator=generator) + torch.arange(batch) / batch) % 1.0
    counts = (u * n_units).long().clamp_(0, n_units - 1) + 1
    masked = _mask_of_size(batch, model, counts, generator, tokens.device)
    t = None
    if model.time_conditioned:
        # a = α_t ~ Beta(N − m + 1, m) given m masked units: the (N − m + 1)-th smallest of N uniforms
        order_stats = torch.rand(batch, n_units, generator=generator, dtype=torch.float64).sort(-1).values
        a = order_stats.gather(-1, (n_units - counts).unsqueeze(-1)).squeeze(-1)
        t = model.schedule.inverse_alpha(a).to(torch.float32).to(tokens.device)
    # the output layer and head run only at the tokens with a masked unit: the others add 0
    log_p = model.log_probs_at(apply_mask(y0, masked, model.mask_id), masked.any(-1), t)  # [N, C]
    per_unit = touched_unit_nll(log_p, y0, tokens, masked, model).sum(-1) / counts.to(log_p)
    return n_units * per_unit


def is_block_model(model) -> bool:
    """A block-diffusion model (DESIGN §2.8): every loss here then means its block version."""
    from .block import is_block_model as check
    return check(model)


def _blocks():
    """prime_core.diffusion.block, imported when first needed (it builds on this module)."""
    from . import block
    return block


def _training_noise(model, tokens, eps, antithetic, generator, t, masked, mask_rate_range=None):
    """(y₀, t, mask) for the training objectives: t ∈ [ε, 1] stratified unless given (or the masking rate
    stratified over ``mask_rate_range``), mask ~ q(y_t | y₀)."""
    y0 = model.encode(tokens)
    if mask_rate_range is not None and t is None:
        t = _blocks().mask_rate_times(model, tokens.shape[0], *mask_rate_range, generator=generator)
    if t is None:
        t = model.schedule.sample_times(tokens.shape[0], eps=eps, antithetic=antithetic, generator=generator)
    if masked is None:  # the uniforms come from a CPU generator: compare them with α_t on the CPU
        masked = sample_mask(y0.shape, model.schedule.alpha(t.cpu()), grouped=model.grouped, generator=generator)
    return y0, t.to(tokens.device), masked.to(tokens.device)


def training_nelbo(model, tokens: torch.Tensor, *, eps: float = 1e-3, antithetic: bool = True,
                   generator: torch.Generator | None = None, t: torch.Tensor | None = None,
                   masked: torch.Tensor | None = None, mask_rate_range: tuple[float, float] | None = None
                   ) -> torch.Tensor:
    """MDLM-style estimator on t ∈ [ε, 1]: w(t) Σ_{masked units} −log p_θ(y₀ᵘ | y_t). Training objective.

    ``t`` [B] and ``masked`` [B, L, ℓ] (drawn from q(y_t | y_0) given t) may be passed in, e.g. by a trainer that
    draws the noise for a whole global batch and splits it across micro-batches or processes.
    ``mask_rate_range`` = (lo, hi): the masking rate 1 − α_t stratified over [lo, hi] instead of t over [ε, 1]
    (BD3-LM's clipped schedule, `train.mask_rate_range`): a variance-reduced objective, never a bound."""
    if is_block_model(model):
        return _blocks().block_training_nelbo(model, tokens, eps=eps, antithetic=antithetic, generator=generator,
                                              mask_rate_range=mask_rate_range, t=t, masked=masked)
    y0, t, masked = _training_noise(model, tokens, eps, antithetic, generator, t, masked, mask_rate_range)
    log_p = model.log_probs_at(apply_mask(y0, masked, model.mask_id), masked.any(-1), t)  # [N, C]
    return model.schedule.weight(t).to(log_p) * touched_unit_nll(log_p, y0, tokens, masked, model).sum(-1)


def joint_loss(model, tokens: torch.Tensor, *, eps: float = 1e-3, antithetic: bool = True,
               generator: torch.Generator | None = None, t: torch.Tensor | None = None,
               masked: torch.Tensor | None = None, mask_rate_range: tuple[float, float] | None = None
               ) -> torch.Tensor:
    """The paper's joint loss w(t) Σ_{i: token i has a masked digit} −log p_θ(x₀ⁱ | y_t). NOT a bound.
    ``t`` and ``masked`` may be passed in as for `training_nelbo`."""
    if is_block_model(model):
        return _blocks().block_joint_loss(model, tokens, eps=eps, antithetic=antithetic, generator=generator,
                                          mask_rate_range=mask_rate_range, t=t, masked=masked)
    y0, t, masked = _training_noise(model, tokens, eps, antithetic, generator, t, masked, mask_rate_range)
    touched = masked.any(-1)  # [B, L]: the only tokens the loss reads
    log_p = model.training_log_probs_at(apply_mask(y0, masked, model.mask_id), touched, t)  # [N, C]
    per_token = touched_nll(log_p, tokens, touched)
    return model.schedule.weight(t).to(per_token) * per_token.sum(-1)


def tstep_term(model, tokens: torch.Tensor, k: torch.Tensor, masked: torch.Tensor, *, steps: int) -> torch.Tensor:
    """T · Σ_i E_{S_i}[−log p_θ(y₀^{i,S_i} | y_{t_k})] per row [B] (float64), for step k [B] of the T-step grid and
    the masked units ``masked`` [B, L, ℓ] of y_{t_k} ~ q(· | ᾱ_k): the T-step NELBO's term of step k (times T, the
    inverse chance of drawing k), with the reveal draw S summed out exactly (`expected_reveal_nll`)."""
    y0 = model.encode(tokens)
    alphas = model.schedule.step_alphas(steps)
    log_reveal, log_stay = (v.to(tokens.device) for v in step_reveal_log_probs(alphas, k.cpu()))
    t = (1.0 - k.double().cpu() / steps).to(torch.float32).to(tokens.device)
    log_p = model.log_probs(apply_mask(y0, masked.to(tokens.device), model.mask_id), t)
    return steps * expected_reveal_nll(log_p, y0, masked.to(tokens.device), log_reveal, log_stay, model).sum(-1)


def tstep_nelbo(model, tokens: torch.Tensor, *, steps: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Valid T-step NELBO of the T-step sampler, unbiased with one stratified step k per row:
    T · Σ_i E_{S_i}[−log p_θ(y₀^{i,S_i} | y_{t_k})], y_{t_k} ~ q(· | ᾱ_k), S_i = the units of token i revealed in
    step k (`tstep_term`). The reveal draw is summed out exactly (a Rao-Blackwellisation): sampling it left the
    revealed set empty almost always at large T, so one draw was 0 with high probability and T·(a rare large
    value) otherwise — an estimate that read 0 at T ≳ 30,000 for any affordable number of draws. The step weights
    r_k are computed in log space (`step_reveal_log_probs`), so every T up to 10⁶ keeps full float64 precision."""
    if is_block_model(model):
        return _blocks().block_tstep_nelbo(model, tokens, steps=steps, generator=generator)
    batch = tokens.shape[0]
    alphas = model.schedule.step_alphas(steps)  # ᾱ_0 = 0 … ᾱ_T = 1
    u = (torch.rand(1, generator=generator, dtype=torch.float64) + torch.arange(batch) / batch) % 1.0
    k = (u * steps).long().clamp_(0, steps - 1)
    shape = (batch, tokens.shape[1], model.ell)
    masked = sample_mask(shape, alphas[k], grouped=model.grouped, generator=generator)
    return tstep_term(model, tokens, k, masked, steps=steps)


TRAINING_LOSSES = {"nelbo": training_nelbo, "joint": joint_loss}
