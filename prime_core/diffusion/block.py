"""Block diffusion with partial masking (BD3-LM with sub-tokens, DESIGN §2.8): the model, its losses and bounds.

A sequence of L tokens is split into K = L/B blocks x¹ … x^K of B tokens. The model is

    p_θ(x) = Πₖ p_θ(xᵏ | x^{<k}),

each factor a partial-masking MDM over the B·ℓ sub-tokens of block k (B tokens under grouped noise) conditioned
on the *clean* earlier blocks. Everything inside a block is §2.4 unchanged, so

- the valid bound is Σₖ NELBO(xᵏ | x^{<k}) (continuous-time, `block_nelbo`, or T-step, `block_tstep_nelbo`), each
  block drawn independently: the sum of the blocks' unbiased estimates is unbiased for the sum;
- the exact likelihood of a tiny block model is the product over blocks of §2.4's enumeration over reveal orders
  inside the block, given its prefix (`block_exact.exact_block_log_likelihood`);
- B = L is today's MDLM-Prime model exactly (same draws, same numbers: K = 1 runs the plain forward), and B = 1
  with ℓ = 1 is an autoregressive model whose bound is its exact NLL (one unit per block: nothing to average).

Training runs all blocks in one forward pass over [y_t ; x₀] (2L positions) with `block_attention_mask`; the
backbone declares ``supports_blocks`` and implements ``block_forward`` (and, for cached sampling,
``new_block_cache`` / ``block_decode``). Block models are time-independent (the paper's text setup): the
blocks are at different noise levels in one pass, and the backbones condition on one t per sequence.
``train.mask_rate_range`` = [lo, hi] (BD3-LM's clipped schedule, a variance reduction) is a training objective
only; every reported bound uses the full schedule.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from ..interfaces import Backbone
from .forward import apply_mask, sample_mask
from .unit_losses import expected_reveal_nll, step_reveal_log_probs, touched_nll, touched_unit_nll


# ------------------------------------------------------------------------------------------------- the model
def block_size_of(model) -> int:
    """B: the model's ``block_size`` (L when it has none, i.e. a plain MDM)."""
    size = getattr(model, "block_size", None)
    return model.length if size is None else int(size)


def is_block_model(model) -> bool:
    """True for a model with K = L/B ≥ 2 blocks (B = L is the plain model)."""
    return block_size_of(model) < model.length


def check_block_model(block_size: int | None, length: int, backbone, backbone_name: str,
                      time_conditioned: bool) -> None:
    """Bad configurations, each one line (`ConfigError`): B must divide L; the backbone must mask attention
    (``supports_blocks``); block models are time-independent."""
    if block_size is None or block_size == length:
        return
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ConfigError(f"model.block_size must be a whole number B ≥ 1 that divides L = {length}, got {block_size!r}")
    if length % block_size:
        divisors = [d for d in range(1, length + 1) if length % d == 0]
        shown = ", ".join(map(str, divisors[:12])) + (" …" if len(divisors) > 12 else "")
        raise ConfigError(f"model.block_size={block_size} does not divide L = {length}; allowed: {shown}")
    if not getattr(backbone, "supports_blocks", False) or not callable(getattr(backbone, "block_forward", None)):
        raise ConfigError(f"model.block_size={block_size} needs a backbone that can mask attention "
                          f"(supports_blocks, e.g. dit); backbone {backbone_name!r} cannot: remove model.block_size")
    if time_conditioned:
        raise ConfigError(f"model.block_size={block_size} needs model.time_conditioned = false (the blocks of one "
                          "sequence are at different noise levels in one pass)")


def block_attention_mask(length: int, block_size: int, device=None) -> torch.Tensor:
    """The training mask over [y_t ; x₀] (2L positions): bool [2L, 2L], True = query may attend to key.
    Noisy block k (positions < L) sees noisy block k and clean blocks < k; clean block k sees clean blocks ≤ k."""
    block = torch.arange(length, device=device) // block_size
    q, k = block.view(-1, 1), block.view(1, -1)
    noisy_noisy = q == k
    noisy_clean = k < q
    clean_clean = k <= q
    top = torch.cat([noisy_noisy, noisy_clean], dim=1)
    bottom = torch.cat([torch.zeros_like(noisy_noisy), clean_clean], dim=1)
    return torch.cat([top, bottom], dim=0)


def block_logits(model, y_t: torch.Tensor, y_0: torch.Tensor, positions: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """Backbone logits [B, L, out_dim] of every block k given noisy block k of y_t and clean blocks < k of y_0
    (or [N, out_dim] at ``positions``, as `PrimeModel.forward`). K = 1 runs the plain forward (no clean half:
    nothing may attend to it)."""
    size = block_size_of(model)
    if size == model.length:
        return model(y_t, None, positions=positions)
    return model.backbone.block_forward(y_t, y_0, size, positions=positions)


def block_log_probs(model, y_t: torch.Tensor, y_0: torch.Tensor) -> torch.Tensor:
    """log p_θ(x | y_tᵏ, x^{<k}) over V(y_t) at every position: [B, L, C]."""
    return model.head.log_probs(block_logits(model, y_t, y_0), y_t, model.map)


def block_log_probs_at(model, y_t: torch.Tensor, y_0: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """`block_log_probs` at the positions ``where`` only: [N, C] (`PrimeModel.log_probs_at`)."""
    logits = block_logits(model, y_t, y_0, positions=where)
    return model.head.log_probs(logits, Backbone.select_positions(y_t, where), model.map)


def block_training_log_probs(model, y_t: torch.Tensor, y_0: torch.Tensor) -> torch.Tensor:
    """The head's training distribution (the joint loss's) given the block context: [B, L, C]."""
    return model.head.training_log_probs(block_logits(model, y_t, y_0), y_t, model.map)


def block_training_log_probs_at(model, y_t: torch.Tensor, y_0: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """`block_training_log_probs` at the positions ``where`` only: [N, C] (`PrimeModel.training_log_probs_at`)."""
    logits = block_logits(model, y_t, y_0, positions=where)
    return model.head.training_log_probs(logits, Backbone.select_positions(y_t, where), model.map)


# ------------------------------------------------------------------------------------------------- losses
def _shape(model, tokens):
    """(batch, K, B, rows = batch·K, units per block)."""
    size = block_size_of(model)
    if model.time_conditioned:
        raise ValueError("block-diffusion losses need a time-independent model (model.time_conditioned = false)")
    batch, blocks = tokens.shape[0], model.length // size
    return batch, blocks, size, batch * blocks, size * (1 if model.grouped else model.ell)


def _block_mask_of_size(model, rows: int, size: int, counts: torch.Tensor, generator, device) -> torch.Tensor:
    """Exactly counts[r] masked units in each (row, block) r, uniformly: bool [rows, B, ℓ] (the draws of
    `losses._mask_of_size` for K = 1)."""
    n_units = size * (1 if model.grouped else model.ell)
    ranks = torch.rand(rows, n_units, generator=generator).argsort(-1).argsort(-1).to(device)
    units = ranks < counts.to(device).unsqueeze(-1)
    if model.grouped:
        return units.view(rows, size, 1).expand(rows, size, model.ell)
    return units.view(rows, size, model.ell)


def block_nelbo(model, tokens: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Valid bound Σₖ NELBO(xᵏ | x^{<k}) per row [B] (nats): in each block the schedule-free form of
    `losses.nelbo`, N_B · E_{m ~ U{1..N_B}} E_{|M| = m}[mean_{u ∈ M} −log p_θ(y₀ᵘ | y_M̄ᵏ, x^{<k})], N_B = B·ℓ units
    (B grouped), with the mask counts m stratified over the batch·K (row, block) pairs."""
    batch, blocks, size, rows, n_units = _shape(model, tokens)
    y0 = model.encode(tokens)
    u = (torch.rand(1, generator=generator) + torch.arange(rows) / rows) % 1.0
    counts = (u * n_units).long().clamp_(0, n_units - 1) + 1
    masked = _block_mask_of_size(model, rows, size, counts, generator, tokens.device).reshape(y0.shape)
    log_p = block_log_probs_at(model, apply_mask(y0, masked, model.mask_id), y0, masked.any(-1))  # [N, C]
    per_unit = touched_unit_nll(log_p, y0, tokens, masked, model).view(rows, size).sum(-1) / counts.to(log_p)
    return (n_units * per_unit).view(batch, blocks).sum(-1)


def mask_rate_times(model, rows: int, lo: float, hi: float, generator=None) -> torch.Tensor:
    """Training times [rows] whose masking rate 1 − α_t is stratified over [lo, hi] (BD3-LM's clipped range)."""
    u = (torch.rand(1, generator=generator, dtype=torch.float64) + torch.arange(rows, dtype=torch.float64) / rows) % 1.0
    rate = lo + (hi - lo) * u
    return model.schedule.inverse_alpha(1.0 - rate).to(torch.float32)


def _training_noise(model, tokens, eps, antithetic, generator, mask_rate_range, t=None, masked=None):
    """(y₀, t [rows], mask [B, L, ℓ]): one time per (row, block), or the given ``t`` ([B]: one per row, shared
    by its blocks — still unbiased for each block's term — or [B·K]) and ``masked`` (drawn from q given t)."""
    batch, blocks, size, rows, _ = _shape(model, tokens)
    y0 = model.encode(tokens)
    if t is not None:
        t = t.reshape(-1)
        t = t.repeat_interleave(blocks) if t.numel() == batch else t
        if t.numel() != rows:
            raise ValueError(f"t must hold one time per row ({batch}) or per (row, block) ({rows}), got {t.numel()}")
    elif mask_rate_range is None:
        t = model.schedule.sample_times(rows, eps=eps, antithetic=antithetic, generator=generator)
    else:
        t = mask_rate_times(model, rows, *mask_rate_range, generator=generator)
    if masked is None:
        masked = sample_mask((rows, size, model.ell), model.schedule.alpha(t.cpu()), grouped=model.grouped,
                             generator=generator)
    return y0, t.to(tokens.device), masked.to(tokens.device).reshape(y0.shape)


def block_training_nelbo(model, tokens: torch.Tensor, *, eps: float = 1e-3, antithetic: bool = True,
                         generator: torch.Generator | None = None, mask_rate_range=None, t=None,
                         masked=None) -> torch.Tensor:
    """Σₖ w(tₖ) Σ_{masked units u of block k} −log p_θ(y₀ᵘ | y_{tₖ}ᵏ, x^{<k}), one tₖ per (row, block), tₖ ∈ [ε, 1]
    or with 1 − α_{tₖ} ∈ ``mask_rate_range``. A training objective (the K = 1 draws are `losses.training_nelbo`'s)."""
    batch, blocks, size, rows, _ = _shape(model, tokens)
    y0, t, masked = _training_noise(model, tokens, eps, antithetic, generator, mask_rate_range, t, masked)
    log_p = block_log_probs_at(model, apply_mask(y0, masked, model.mask_id), y0, masked.any(-1))  # [N, C]
    per_block = touched_unit_nll(log_p, y0, tokens, masked, model).view(batch, blocks, size).sum(-1)
    return (model.schedule.weight(t).to(log_p).view(batch, blocks) * per_block).sum(-1)


def block_joint_loss(model, tokens: torch.Tensor, *, eps: float = 1e-3, antithetic: bool = True,
                     generator: torch.Generator | None = None, mask_rate_range=None, t=None,
                     masked=None) -> torch.Tensor:
    """The paper's joint loss inside each block, Σₖ w(tₖ) Σ_{i ∈ block k with a masked digit} −log p_θ(x₀ⁱ | ·).
    NOT a bound (DESIGN §1)."""
    batch, blocks, size, rows, _ = _shape(model, tokens)
    y0, t, masked = _training_noise(model, tokens, eps, antithetic, generator, mask_rate_range, t, masked)
    touched = masked.any(-1)  # [B, L]: the only tokens the loss reads
    log_p = block_training_log_probs_at(model, apply_mask(y0, masked, model.mask_id), y0, touched)  # [N, C]
    per_token = touched_nll(log_p, tokens, touched).view(batch, blocks, size).sum(-1)
    return (model.schedule.weight(t).to(per_token).view(batch, blocks) * per_token).sum(-1)


def block_tstep_nelbo(model, tokens: torch.Tensor, *, steps: int,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Valid T-step bound Σₖ NELBO_T(xᵏ | x^{<k}) of the block-by-block T-step sampler, per row [B] (float64): in
    each block one stratified step kᵦ, T · Σ_{i ∈ block} E_S[−log p_θ(y₀^{i,S_i} | ·)] with the reveal draw summed
    out exactly (`losses.expected_reveal_nll`)."""
    batch, blocks, size, rows, _ = _shape(model, tokens)
    alphas = model.schedule.step_alphas(steps)
    u = (torch.rand(1, generator=generator, dtype=torch.float64) + torch.arange(rows) / rows) % 1.0
    k = (u * steps).long().clamp_(0, steps - 1)
    masked = sample_mask((rows, size, model.ell), alphas[k], grouped=model.grouped, generator=generator)
    y0 = model.encode(tokens)
    masked = masked.to(tokens.device)
    log_reveal, log_stay = (v.to(tokens.device) for v in step_reveal_log_probs(alphas, k))
    log_p = block_log_probs(model, apply_mask(y0, masked.reshape(y0.shape), model.mask_id), y0)
    per_pos = expected_reveal_nll(log_p.reshape(rows, size, -1), y0.reshape(rows, size, -1), masked,
                                  log_reveal, log_stay, model)
    return (steps * per_pos.sum(-1)).view(batch, blocks).sum(-1)
