"""Forward (noising) process on sub-tokens (DESIGN §2.2).

Each *reveal unit* is kept with probability α_t and masked with probability 1 − α_t, independently.
Independent noise: a unit is one sub-token (L·ℓ units). Grouped noise: a unit is a whole token (its ℓ digits
share one draw; L units), which makes it token-level MDM with the sub-token encoder.
"""

from __future__ import annotations

import torch

NOISE_KINDS = ("independent", "grouped")


def sample_mask(shape: torch.Size | tuple, keep_prob: torch.Tensor, *, grouped: bool,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Bool mask [B, L, ℓ], True = masked. keep_prob α_t has shape [B] (or broadcastable to [B, 1, 1])."""
    b, length, ell = shape
    draw_shape = (b, length, 1) if grouped else (b, length, ell)
    u = torch.rand(draw_shape, generator=generator, dtype=torch.float64)
    masked = u >= keep_prob.to(torch.float64).reshape(-1, 1, 1)
    return masked.expand(b, length, ell) if grouped else masked


def apply_mask(y0: torch.Tensor, masked: torch.Tensor, mask_id: int) -> torch.Tensor:
    """y_t = y0 with masked sub-tokens replaced by the mask symbol m = b."""
    return y0.masked_fill(masked, mask_id)
