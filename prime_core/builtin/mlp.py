"""A small MLP backbone for toy problems and tests.

The L token embeddings from the sub-token encoder are flattened and mixed by a residual MLP, so every output
position sees the whole sequence (enough for L ≤ a few dozen). Optional time conditioning adds an embedding of t.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..diffusion.encoder import SubTokenEncoder
from ..errors import ConfigError
from ..interfaces import Backbone, BackboneSpec


class _Block(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def forward(self, h):
        return h + self.fc(self.norm(h))


class MLPBackbone(Backbone):
    """y [B, L, ℓ] → encoder [B, L, D] → flatten [B, L·D] → residual MLP (hidden H, depth) → [B, L, out_dim]."""

    def __init__(self, spec: BackboneSpec, hidden: int = 256, depth: int = 2, encoder: str = "shared"):
        for name, value, lo in (("hidden", hidden, 1), ("depth", depth, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise ConfigError(f"model.backbone_options.{name} of the mlp backbone must be a whole number "
                                  f"≥ {lo}, got {value!r}")
        super().__init__(spec)
        self.time_conditioned = bool(spec.time_conditioned)
        self.encoder = SubTokenEncoder(spec.base, spec.ell, spec.width, encoder)
        self.inp = nn.Linear(spec.length * spec.width, hidden)
        self.time = nn.Sequential(nn.Linear(16, hidden), nn.GELU()) if self.time_conditioned else None
        self.blocks = nn.ModuleList(_Block(hidden) for _ in range(depth))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, spec.length * spec.out_dim)

    @staticmethod
    def _time_features(t: torch.Tensor) -> torch.Tensor:
        freqs = torch.exp(torch.arange(8, device=t.device) * (math.log(1000.0) / 7))
        angles = t.float().unsqueeze(-1) * freqs
        return torch.cat([angles.sin(), angles.cos()], dim=-1)  # [B, 16]

    def forward(self, y: torch.Tensor, t: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [B, L, out_dim], or [N, out_dim] at ``positions`` (see `Backbone`). The output layer maps each
        row's hidden state to all L·out_dim logits in one matmul, so here ``positions`` selects from the full
        output: the restricted logits then equal the full ones bit for bit (the core's tests compare the
        sampler's head-at-positions path with torch.equal), and this toy network has no big per-position layer
        to save."""
        b, length, _ = y.shape
        h = self.inp(self.encoder(y).reshape(b, -1))  # fold L positions: [B, L·D] → [B, H]
        if self.time is not None:
            if t is None:
                raise ValueError("this backbone is time-conditioned: pass t [B]")
            h = h + self.time(self._time_features(t))
        for block in self.blocks:
            h = block(h)
        return self.select_positions(self.out(self.norm(h)).view(b, length, self.spec.out_dim), positions)
