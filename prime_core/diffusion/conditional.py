"""A valid bound on −log p_θ(target | context) inside one window of L tokens (DESIGN §2.4, restricted).

Positions of a window are of three kinds: *context* (observed throughout), *target* (scored) and *hidden* (held
masked throughout, e.g. the positions after a short continuation). The conditional model is the reverse process
that starts with every target unit masked and reveals only target units — exactly `prime sample` with the context
as ``fixed_tokens`` and the hidden positions never revealed. With N = the number of target units (sub-tokens;
tokens under grouped noise), the continuous-time NELBO of that process,

    ∫₀¹ w(t) E_q[Σ_{masked target units u} −log p_θ(y₀ᵘ | y_t)] dt  ≥  −log p_θ(target | context),

is estimated as in `prime_core.diffusion.losses.nelbo`: N · E_{m ~ U{1..N}} E_{a ~ Beta(N−m+1, m)} E_{|M| = m}
[mean_{u ∈ M} −log p_θ(y₀ᵘ | y_M̄, t(a))], unbiased, one draw per row. With no context and no hidden position it
is the unconditional NELBO. It is an upper bound on the negative log-likelihood, never the exact value.
"""

from __future__ import annotations

import torch

from .forward import apply_mask
from .losses import unit_nll


def conditional_nelbo(model, tokens: torch.Tensor, target: torch.Tensor, context: torch.Tensor, *,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """One unbiased estimate per row [B] (nats) of the bound above. tokens [B, L] (ids at target and context
    positions; anything valid elsewhere), target / context [B, L] bool, disjoint, each row with ≥ 1 target."""
    if bool((target & context).any()):
        raise ValueError("a position cannot be both target and context")
    if not bool(target.any(-1).all()):
        raise ValueError("every row needs at least one target position")
    y0 = model.encode(tokens)
    batch, length, ell = y0.shape
    per_pos = 1 if model.grouped else ell
    unit_target = target.unsqueeze(-1).expand(batch, length, per_pos).reshape(batch, -1).cpu()
    n_units = unit_target.sum(-1)  # N per row
    u = (torch.rand(1, generator=generator) + torch.arange(batch) / batch) % 1.0
    counts = (u * n_units).long().clamp_(max=n_units - 1) + 1  # m ∈ {1 … N}, stratified over the batch
    keys = torch.rand(unit_target.shape, generator=generator).masked_fill(~unit_target, 2.0)
    ranks = keys.argsort(-1).argsort(-1)
    chosen = (ranks < counts.unsqueeze(-1)).view(batch, length, per_pos).expand(batch, length, ell)
    chosen = chosen.to(tokens.device)
    hidden = (~target & ~context).to(tokens.device).unsqueeze(-1).expand(batch, length, ell)
    t = None
    if model.time_conditioned:  # a = α_t: the (N − m + 1)-th smallest of N uniforms
        order = torch.rand(unit_target.shape, generator=generator, dtype=torch.float64)
        order = order.masked_fill(~unit_target, 2.0).sort(-1).values
        a = order.gather(-1, (n_units - counts).unsqueeze(-1)).squeeze(-1)
        t = model.schedule.inverse_alpha(a).to(torch.float32).to(tokens.device)
    log_p = model.log_probs(apply_mask(y0, chosen | hidden, model.mask_id), t)
    nll = unit_nll(log_p, y0, tokens, chosen, model).sum(-1)
    return n_units.to(nll) * nll / counts.to(nll)
