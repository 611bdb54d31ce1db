"""Confidence of a drawn reveal unit (DESIGN §2.5 item 8), shared by the `confidence` and `remdm` samplers.

A reveal unit is one sub-token (digit j of token i, independent noise) or one token (grouped noise). With
p = p_θ(· | y_t) the C-way distribution x̂ was drawn from (after temperature τ and nucleus filtering, on V(y_t)),
the unit's distribution is
    digit j:  the marginal m_j(v) = Σ_{x ∈ V(y_t), f(x)_j = v} p(x), v ∈ {0 … b−1}, and its drawn value x̂_j = f(x̂)_j;
    token:    p itself, and its drawn value x̂.
Its confidence, for ``kind``:
    prob     the probability of the drawn value, m_j(x̂_j) (token: p(x̂)) — MaskGIT / LLaDA's "low-confidence
             remasking" score and ReMDM's `conf` score;
    margin   that probability minus the largest probability of any other value (top-1 − top-2 when x̂ is the mode);
    entropy  −H(m_j) (token: −H(p)), the negative entropy of the unit's distribution (independent of x̂).
Higher is more confident in every case.
"""

from __future__ import annotations

import torch

CONFIDENCE_KINDS = ("prob", "margin", "entropy")


def check_confidence_kind(kind) -> str:
    if kind not in CONFIDENCE_KINDS:
        raise ValueError(f"confidence must be one of {', '.join(CONFIDENCE_KINDS)}, got {kind!r}")
    return kind


def unit_distributions(log_p: torch.Tensor, subtoken_map, grouped: bool) -> torch.Tensor:
    """Per-unit probabilities [n, U, V]: [n, 1, C] (grouped: the token distribution) or the digit marginals
    m_j [n, ℓ, b] = p @ onehot(f(x)_j), from log p [n, C]."""
    probs = log_p.double().exp()
    if grouped:
        return probs.unsqueeze(1)
    table = subtoken_map.digit_table(log_p.device)  # [C, ℓ]: f(x)_j for every token x < C
    onehot = torch.nn.functional.one_hot(table, subtoken_map.base).double()  # [C, ℓ, b]
    return torch.einsum("nc,cjv->njv", probs, onehot)


def drawn_values(digits: torch.Tensor, subtoken_map, grouped: bool) -> torch.Tensor:
    """The drawn value of each unit [n, U] from the digits [n, ℓ] at the positions (grouped: the token x̂;
    a digit still masked gets a placeholder 0 — callers ignore it)."""
    if grouped:
        return subtoken_map.decode(digits).unsqueeze(-1)
    return torch.where(digits == subtoken_map.mask_id, torch.zeros_like(digits), digits)


def unit_confidence(log_p: torch.Tensor, digits: torch.Tensor, subtoken_map, grouped: bool,
                    kind: str = "prob") -> torch.Tensor:
    """Confidence [n, U] (float64) of every unit at n positions (module docstring). log_p [n, C] the filtered
    log-probabilities x̂ was drawn from; digits [n, ℓ] the positions' digits after the draw."""
    dist = unit_distributions(log_p, subtoken_map, grouped)  # [n, U, V]
    if kind == "entropy":
        return (dist * dist.clamp_min(1e-300).log()).sum(-1)
    value = drawn_values(digits, subtoken_map, grouped).unsqueeze(-1)  # [n, U, 1]
    chosen = dist.gather(-1, value).squeeze(-1)
    if kind == "prob":
        return chosen
    others = dist.scatter(-1, value, 0.0).max(-1).values  # 0 when the unit has a single possible value
    return chosen - others


class _Recording:
    """The model, seen through a sampler's `reveal`: forwards everything, keeps the last ``log_probs_at``."""

    def __init__(self, model):
        self._model, self.log_p = model, None

    def __getattr__(self, name):
        return getattr(self._model, name)

    def log_probs_at(self, *args, **kwargs):
        self.log_p = self._model.log_probs_at(*args, **kwargs)
        return self.log_p


def reveal_with_log_probs(sampler, model, y, reveal, u_reveal, keys, step):
    """``sampler.reveal(...)`` (the sampler's own draw of x̂ and its keyed noise), plus the filtered log p [n, C]
    x̂ was drawn from at the n revealing positions (temperature ``step.temperature``, nucleus ``step.top_p``,
    renormalised), or None when nothing was revealed (no forward pass)."""
    from .ancestral import filter_log_probs

    seen = _Recording(model)
    y_s = sampler.reveal(seen, y, reveal, u_reveal, keys, step)
    if seen.log_p is None:
        return y_s, None
    scores = filter_log_probs(seen.log_p, step.temperature, step.top_p)
    return y_s, torch.log_softmax(scores.double(), -1)
