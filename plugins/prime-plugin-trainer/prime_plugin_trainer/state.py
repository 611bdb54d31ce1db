"""Checkpoint contents of the torch trainer: the core's one layout (`prime_core.runs.trainstate`, shared with the
single-process trainer), with full tensors gathered from shards under FSDP:

"model/<name>"        the weights θ
"ema/<name>"          θ̄, the EMA of the parameters, with the model's buffers (absent when ema = 0)
"optim/<param>/<key>" AdamW's moments and step count per parameter, keyed by parameter name
metadata: the core's model metadata + {"train_state": {"step", "world_size", "trainer"}}.

Data order and noise are functions of (seed, step) (see batching.py) and dropout's RNG is reseeded from
(seed, step, micro-batch), so the step count is the whole of the remaining training state.
"""

from __future__ import annotations

import torch
from torch import nn

from prime_core import api as core

from .ema import EMA, _full, _like


def model_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """Full state dict on CPU (collective under FSDP)."""
    return {k: _full(v).detach().cpu() for k, v in module.state_dict().items()}


def optimizer_tensors(module: nn.Module, opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    return core.optimizer_tensors(module, opt, gather=_full)


def ema_tensors(module: nn.Module, ema: EMA | None, model_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if ema is None:
        return {}
    out = dict(model_state)  # buffers (and anything not averaged) as in the model
    out.update(ema.full_tensors())
    return out


@torch.no_grad()
def load_model_tensors(module: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    current = module.state_dict()
    module.load_state_dict({k: _like(tensors[k], v) if k in tensors else v for k, v in current.items()},
                           strict=True)
    missing = sorted(set(current) - set(tensors))
    if missing:
        raise KeyError(f"checkpoint lacks model tensor {missing[0]}")


def load_optimizer_tensors(module: nn.Module, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    core.load_optimizer_tensors(module, opt, tensors, place=_like)
