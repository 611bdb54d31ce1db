"""`PrimeModel`: sub-token map f + backbone + parameterization + schedule + noise kind, as one nn.Module.

It answers one question, p_θ(x | y_t), and knows the diffusion problem's sizes; losses, bounds and the sampler
live in their own modules and only call `log_probs`.
"""

from __future__ import annotations

from operator import attrgetter

import torch
from torch import nn

from ..errors import PrimeError
from .forward import NOISE_KINDS
from ..interfaces import Backbone, NoiseSchedule, Parameterization, SubTokenMap


class PrimeModel(nn.Module):
    def __init__(self, subtoken_map: SubTokenMap, backbone: Backbone, head: Parameterization,
                 schedule: NoiseSchedule, noise: str = "independent", block_size: int | None = None):
        super().__init__()
        if noise not in NOISE_KINDS:
            raise ValueError(f"noise must be one of {', '.join(NOISE_KINDS)}, got {noise!r}")
        self.map = subtoken_map
        self.backbone = backbone
        self.head = head
        self.schedule = schedule
        self.noise = noise
        self.block_size = block_size  # B tokens per block (DESIGN §2.8); None: one block of L (plain MDM)

    # sizes: the map's C, ℓ, b and mask id, the backbone's L (read through, so they can never disagree) -----------
    num_classes = property(attrgetter("map.num_classes"), doc="C, token classes")
    ell = property(attrgetter("map.ell"), doc="ℓ, sub-tokens per token")
    base = property(attrgetter("map.base"), doc="b, the sub-token base")
    mask_id = property(attrgetter("map.mask_id"), doc="m = b, the mask sub-token's id")
    length = property(attrgetter("backbone.spec.length"), doc="L, tokens per sequence")

    @property
    def grouped(self) -> bool:
        return self.noise == "grouped"

    @property
    def time_conditioned(self) -> bool:
        return bool(self.backbone.time_conditioned)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # the one question -----------------------------------------------------------------------------------------
    def forward(self, y_t: torch.Tensor, t: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> torch.Tensor:
        """Backbone logits [B, L, out_dim], or [N, out_dim] at ``positions`` (flat indices b·L + i [N] or a bool
        mask [B, L]); t is ignored by time-independent backbones. A backbone without a ``positions`` argument
        has its full output sliced."""
        t = t if self.time_conditioned else None
        if self.block_size is not None and self.block_size < self.length:  # never sample a different model silently
            raise PrimeError(f"this is a block-diffusion model (model.block_size = {self.block_size}): its p_θ reads "
                             "the clean earlier blocks; use prime_core.api.block_log_probs, block losses or "
                             "generate / sample_rows, not the one-block forward")
        if positions is None:
            return self.backbone(y_t, t)
        if self.backbone.accepts_positions():
            return self.backbone(y_t, t, positions=positions)
        return Backbone.select_positions(self.backbone(y_t, t), positions)

    def log_probs(self, y_t: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """log p_θ(x | y_t) over V(y_t): [B, L, C]."""
        return self.head.log_probs(self(y_t, t), y_t, self.map)

    def log_probs_at(self, y_t: torch.Tensor, where: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        """log p_θ(x | y_t) at some positions: [N, C]. ``where`` is a bool mask [B, L] or flat indices b·L + i
        [N] (row-major, as an exported step's ``positions``). Equal to ``log_probs(y_t, t)[where]``; the
        backbone's output projection and the head (restriction to V(y_t), softmax over C) run at those N
        positions only."""
        logits = self(y_t, t, positions=where)
        return self.head.log_probs(logits, Backbone.select_positions(y_t, where), self.map)

    def training_log_probs(self, y_t: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        return self.head.training_log_probs(self(y_t, t), y_t, self.map)

    def training_log_probs_at(self, y_t: torch.Tensor, where: torch.Tensor,
                              t: torch.Tensor | None = None) -> torch.Tensor:
        """The head's training distribution at some positions only: [N, C], equal to
        ``training_log_probs(y_t, t)[where]`` (``where`` as in `log_probs_at`). The joint loss reads only the
        tokens with a masked digit, so the C-way output layer and softmax run there alone."""
        logits = self(y_t, t, positions=where)
        return self.head.training_log_probs(logits, Backbone.select_positions(y_t, where), self.map)

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, L] → y_0 [B, L, ℓ], after checking shape and range."""
        if tokens.dim() != 2 or tokens.shape[1] != self.length:
            raise ValueError(f"token batches must have shape [B, L={self.length}], got {tuple(tokens.shape)}")
        return self.map.encode(tokens)
