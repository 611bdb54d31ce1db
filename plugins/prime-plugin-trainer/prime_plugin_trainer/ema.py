"""Exponential moving average of the weights: θ̄_n = β θ̄_{n−1} + (1 − β) θ_n after optimizer step n, θ̄_0 = θ_0.

Unrolled, θ̄_n = βⁿ θ_0 + (1 − β) Σ_{k=1..n} β^{n−k} θ_k. Shadows are fp32 tensors laid out like the parameters
(local shards under FSDP); buffers are not averaged: a checkpoint's "ema/…" group takes them from the model.
"""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(self, module: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = float(decay)
        self.names = [name for name, _ in module.named_parameters()]
        self.shadow = [p.detach().float().clone() for p in module.parameters()]

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """θ̄ ← θ̄ + (1 − β)(θ − θ̄), the same as β θ̄ + (1 − β) θ."""
        params = [p.detach().float() for p in module.parameters()]
        torch._foreach_lerp_(self.shadow, params, 1.0 - self.decay)

    @torch.no_grad()
    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore shadows from full tensors keyed by parameter name (sharded again where the shadow is)."""
        missing = [n for n in self.names if n not in tensors]
        if missing:
            raise KeyError(f"EMA state lacks {missing[0]}")
        for name, shadow in zip(self.names, self.shadow):
            shadow.copy_(_like(tensors[name], shadow))

    def full_tensors(self) -> dict[str, torch.Tensor]:
        """Parameter name → full fp32 tensor on CPU (a collective under FSDP: every rank must call it)."""
        return {name: _full(t).cpu() for name, t in zip(self.names, self.shadow)}


def _full(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if hasattr(t, "full_tensor") else t


def _like(full: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """``full`` laid out like ``ref``: the local shard of a DTensor, or the tensor itself.

    Every rank holds the full tensor (each reads the checkpoint), so each cuts its own shard
    (src_data_rank=None: no communication, hence no dependence on the order ranks visit tensors in)."""
    if hasattr(ref, "device_mesh"):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(full.to(device=ref.device, dtype=ref.dtype), ref.device_mesh, ref.placements,
                                 src_data_rank=None)
    return full.to(device=ref.device, dtype=ref.dtype)

