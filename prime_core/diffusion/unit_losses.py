"""The per-unit terms every loss and bound is made of (DESIGN §2.4): −log p_θ of the masked units of one noisy
sequence, and the T-step bound's expectation over one step's reveal draw. Shared by `losses` (one block of L
tokens) and `block` (block diffusion), which dispatch on the model; this module depends on neither."""

from __future__ import annotations

import math

import torch

from .heads import all_subset_log_marginals, digit_log_marginal_at, subset_log_marginal


def unit_nll(log_p: torch.Tensor, y0: torch.Tensor, tokens: torch.Tensor, masked: torch.Tensor,
             model) -> torch.Tensor:
    """Σ over masked units of −log p_θ(y₀ᵘ | y_t), per token position: [B, L].

    Independent noise: units are sub-tokens and each uses its digit marginal log p_θ(d_j = y₀^{i,j} | y_t)
    (`digit_log_marginal_at`, all ℓ slots at once). Grouped: units are tokens and use the joint p_θ(x₀ⁱ | y_t)."""
    if model.grouped:
        nll = -log_p.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        return torch.where(masked[..., 0], nll, torch.zeros_like(nll))
    nll = -digit_log_marginal_at(log_p, y0, model.map)  # [B, L, ℓ]
    return torch.where(masked, nll, torch.zeros_like(nll)).sum(-1)


def touched_unit_nll(log_p: torch.Tensor, y0: torch.Tensor, tokens: torch.Tensor, masked: torch.Tensor,
                     model) -> torch.Tensor:
    """`unit_nll` from ``log_p`` [N, C] at the N tokens with a masked unit only (the row-major order of
    ``masked.any(-1)``), placed back at their positions: [B, L], 0 elsewhere (where `unit_nll` is 0 too)."""
    touched = masked.any(-1)
    nll = unit_nll(log_p, y0[touched], tokens[touched], masked[touched], model)  # [N]
    return torch.zeros(tokens.shape, dtype=nll.dtype, device=nll.device).masked_scatter(touched, nll)


def touched_nll(log_p: torch.Tensor, tokens: torch.Tensor, touched: torch.Tensor) -> torch.Tensor:
    """−log p_θ(x₀ⁱ | ·) at the N touched tokens (``log_p`` [N, C], in the row-major order of ``touched``
    [B, L]), placed back at their positions: [B, L], 0 elsewhere."""
    nll = -log_p.gather(-1, tokens[touched].unsqueeze(-1)).squeeze(-1)  # [N]
    return torch.zeros(tokens.shape, dtype=nll.dtype, device=nll.device).masked_scatter(touched, nll)

def step_reveal_log_probs(alphas: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log r_k, log(1 − r_k)) of step k of the grid ᾱ (float64): r_k = (ᾱ_{k+1} − ᾱ_k)/(1 − ᾱ_k) is the chance that
    a unit masked at ᾱ_k is revealed in step k. log(1 − r_k) = log1p(−ᾱ_{k+1}) − log1p(−ᾱ_k), not log(1 − r):
    at large T r is ~1/T and 1 − r would round."""
    a_t, a_s = alphas[k], alphas[k + 1]
    log_stay = torch.log1p(-a_s) - torch.log1p(-a_t)  # −inf at the last step (ᾱ_T = 1: everything is revealed)
    log_reveal = torch.log(a_s - a_t) - torch.log1p(-a_t)
    return log_reveal, log_stay


def expected_reveal_nll(log_p: torch.Tensor, y0: torch.Tensor, masked: torch.Tensor, log_reveal: torch.Tensor,
                        log_stay: torch.Tensor, model) -> torch.Tensor:
    """E_S[−log p_θ(y₀^{i,S_i} | y_t)] per token [B, L] (float64), exactly over the reveal draw S of one step.

    Each masked unit of token i is revealed independently with probability r (log r = ``log_reveal`` [B]), so
        E_S = Σ_{S ⊆ M_i} r^|S| (1 − r)^(|M_i| − |S|) · (−log p_θ(y₀^{i,S} | y_t))
    over the subsets of its masked digits M_i (all 2^ℓ subset marginals at once, `all_subset_log_marginals`).
    Grouped noise: the unit is the token, S_i = all or nothing, E_S = r · (−log p_θ(x₀ⁱ | y_t))."""
    log_p = log_p.double()
    lead = (-1, 1)
    if model.grouped:
        nll = -subset_log_marginal(log_p, y0, masked, model.map)  # S = every digit of a masked token: log p(x₀ⁱ)
        return torch.where(masked[..., 0], log_reveal.exp().view(lead) * nll, torch.zeros_like(nll))
    ell = model.ell
    in_s = (torch.arange(2**ell, device=y0.device).unsqueeze(-1) >> torch.arange(ell, device=y0.device)) & 1
    in_s = in_s.bool()  # [2^ℓ, ℓ]: digit j ∈ S_s
    m = masked.unsqueeze(-2)  # [B, L, 1, ℓ]
    log_w = torch.where(in_s, torch.where(m, log_reveal.view(-1, 1, 1, 1), -math.inf),
                        torch.where(m, log_stay.view(-1, 1, 1, 1), 0.0)).sum(-1)  # [B, L, 2^ℓ]: P(S_s revealed)
    weight = log_w.exp()
    nll = -all_subset_log_marginals(log_p, y0, model.map)
    return torch.where(weight > 0, weight * nll, torch.zeros_like(nll)).sum(-1)  # 0·∞ of impossible S dropped
