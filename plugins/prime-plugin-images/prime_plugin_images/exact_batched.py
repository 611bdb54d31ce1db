"""Exact likelihood and exact continuous-time NELBO for many sequences at once (toy problems, N ≤ 10 units).

Same quantities as `prime_core.exact.exact_log_likelihood` / `exact_nelbo` (DESIGN §2.4): with a time-independent
denoiser, p_θ(y₀) = E_{order π} Π_k p_θ(y₀^{π_k} | y₀^{π_<k}), a dynamic programme over the 2^N revealed sets R,
and NELBO = Σ_{R ≠ all} B(N−m+1, m) Σ_{u ∉ R} −log p_θ(y₀ᵘ | y_R) with m = N − |R| masked units. The core runs it
row by row (seconds per row here); this version batches every row through each set R (2^N forward passes in
all), so the 4096 cells of the 64×64 toy take seconds. Tests check it against the core on sampled rows.
`exact_tstep_log_likelihood_batched` is the T-step sampler's p_T(x) (core: `exact_tstep_log_likelihood`): a DP over
steps in which several units, possibly digits of one token, are revealed together from the joint subset marginal.
"""

from __future__ import annotations

import math

import torch

from prime_core.api import mask_set_weight, reveal_units, revealed_sets, subset_log_marginal


@torch.no_grad()
def _all_log_probs(model, tokens: torch.Tensor):
    """log p_θ(· | y_R) for every revealed set R: [2^N, B, L, C] (float64), with units [N, L, ℓ], revealed
    [2^N, L, ℓ] and y₀ [B, L, ℓ]."""
    if model.time_conditioned:
        raise ValueError("exact likelihoods need a time-independent denoiser (time_conditioned=False)")
    units = reveal_units(model)
    revealed = revealed_sets(units)
    y0 = model.map.encode(tokens)
    log_p = torch.stack([model.log_probs(y0.masked_fill(~revealed[r], model.mask_id), None).double()
                         for r in range(len(revealed))])
    return log_p, units, revealed, y0


@torch.no_grad()
def exact_tstep_log_likelihood_batched(model, tokens: torch.Tensor, steps: int) -> torch.Tensor:
    """log p_T(x) of the T-step ancestral sampler for each row [B] (float64)."""
    log_p, units, revealed, y0 = _all_log_probs(model, tokens)
    n, size = units.shape[0], 2**units.shape[0]
    pairs = [(r, r2) for r in range(size) for r2 in range(size) if r2 & r == r and r2 != r]
    bits = [bin(r).count("1") for r in range(size)]
    joint = {(r, r2): subset_log_marginal(log_p[r], y0, (revealed[r2] & ~revealed[r]).expand_as(y0),
                                          model.map).sum(-1) for r, r2 in pairs}  # [B] each
    alphas = model.schedule.step_alphas(steps)
    state = torch.full((size, len(tokens)), -math.inf, dtype=torch.float64)
    state[0] = 0.0
    for k in range(steps):
        rp = float((alphas[k + 1] - alphas[k]) / (1.0 - alphas[k]))
        log_r = math.log(rp) if rp > 0 else -math.inf
        log_keep = math.log1p(-rp) if rp < 1 else -math.inf
        new = state.clone()  # R' = R: nothing revealed, probability (1 − r)^(masked)
        for r in range(size):
            new[r] = state[r] + (log_keep * (n - bits[r]) if n > bits[r] else 0.0)
        for r, r2 in pairs:
            w = log_r * (bits[r2] - bits[r]) + (log_keep * (n - bits[r2]) if n > bits[r2] else 0.0)
            new[r2] = torch.logaddexp(new[r2], state[r] + w + joint[(r, r2)])
        state = new
    return state[-1]


@torch.no_grad()
def _singles(model, tokens: torch.Tensor, batch_size: int = 8192):
    """log p_θ(y₀ᵘ | y_R) for every set R and unit u ∉ R: [2^N, N, B] (nan where u ∈ R)."""
    if model.time_conditioned:
        raise ValueError("exact likelihoods need a time-independent denoiser (time_conditioned=False)")
    units = reveal_units(model)  # [N, L, ℓ]
    n = units.shape[0]
    revealed = revealed_sets(units)  # [2^N, L, ℓ]
    y0 = model.map.encode(tokens)  # [B, L, ℓ]
    out = torch.full((2**n, n, len(tokens)), math.nan, dtype=torch.float64)
    for r in range(2**n):
        for i in range(0, len(tokens), batch_size):
            y = y0[i:i + batch_size]
            log_p = model.log_probs(y.masked_fill(~revealed[r], model.mask_id), None).double()
            for u in range(n):
                if not r >> u & 1:
                    subset = units[u].expand_as(y)
                    out[r, u, i:i + batch_size] = subset_log_marginal(log_p, y, subset, model.map).sum(-1)
    return out


def exact_log_likelihood_batched(model, tokens: torch.Tensor) -> torch.Tensor:
    """log p_θ(x) for each row of tokens [B, L] → [B] (float64)."""
    singles = _singles(model, tokens)
    n = singles.shape[1]
    reach = torch.full((2**n, len(tokens)), -math.inf, dtype=torch.float64)
    reach[0] = 0.0
    for r in sorted(range(2**n), key=lambda s: bin(s).count("1")):
        if r == 2**n - 1:
            continue
        choose = -math.log(n - bin(r).count("1"))  # the next unit is uniform among the unrevealed
        for u in range(n):
            if not r >> u & 1:
                nxt = r | (1 << u)
                reach[nxt] = torch.logaddexp(reach[nxt], reach[r] + choose + singles[r, u])
    return reach[-1]


def exact_nelbo_batched(model, tokens: torch.Tensor) -> torch.Tensor:
    """The continuous-time NELBO (a valid bound) in closed form for each row → [B] (float64)."""
    singles = _singles(model, tokens)
    n = singles.shape[1]
    total = torch.zeros(len(tokens), dtype=torch.float64)
    for r in range(2**n - 1):
        m = n - bin(r).count("1")
        free = [u for u in range(n) if not r >> u & 1]
        total -= mask_set_weight(n, m) * singles[r, free].sum(0)
    return total
