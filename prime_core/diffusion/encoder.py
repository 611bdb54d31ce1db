"""Sub-token encoder (DESIGN §2.7): ℓ sub-token ids per token → one D-dim token embedding.

Each sub-token (alphabet of b + 1 symbols, the mask included) is embedded to D/ℓ dims and the ℓ vectors are
concatenated in digit order, so the backbone runs on L token positions, not L·ℓ. Options: one table shared by
every digit slot (default), one table per slot, or per-slot D-dim tables summed.
"""

from __future__ import annotations

import torch
from torch import nn

ENCODER_MODES = ("shared", "per-slot", "sum")


class SubTokenEncoder(nn.Module):
    def __init__(self, base: int, ell: int, width: int, mode: str = "shared"):
        super().__init__()
        if mode not in ENCODER_MODES:
            raise ValueError(f"encoder mode must be one of {', '.join(ENCODER_MODES)}, got {mode!r}")
        if mode != "sum" and width % ell:
            raise ValueError(f"width D={width} must be divisible by ℓ={ell} to concatenate sub-token embeddings")
        self.base, self.ell, self.width, self.mode = base, ell, width, mode
        vocab = base + 1  # digits 0 … b−1 and the mask m = b
        if mode == "shared":
            self.table = nn.Embedding(vocab, width // ell)
        else:
            slot_dim = width if mode == "sum" else width // ell
            self.table = nn.Embedding(ell * vocab, slot_dim)  # slot j uses rows j·(b+1) … j·(b+1)+b
        self.register_buffer("_offsets", torch.arange(ell) * vocab, persistent=False)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """y [B, L, ℓ] → [B, L, D]."""
        if self.mode == "shared":
            return self.table(y).flatten(-2)  # [B, L, ℓ, D/ℓ] → [B, L, D]
        emb = self.table(y + self._offsets)  # [B, L, ℓ, ·]
        return emb.sum(-2) if self.mode == "sum" else emb.flatten(-2)
