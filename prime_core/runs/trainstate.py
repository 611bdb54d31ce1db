"""The training state every trainer saves, in one layout (tensors only, never pickled):

"model/<name>"        the weights θ (the model's state dict)
"ema/<name>"          θ̄, the EMA of the parameters, with the model's buffers (absent without EMA)
"optim/<param>/<key>" the optimizer's per-parameter state (AdamW: exp_avg, exp_avg_sq, step), keyed by the
                      parameter's name, so the layout does not depend on how parameters are grouped or sharded
metadata["train_state"] = {"step", "trainer", …}

Sharded trainers pass ``gather`` (a shard → the full tensor) and ``place`` (a full tensor → laid out like the
parameter); the defaults suit an unsharded model.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

Gather = Callable[[torch.Tensor], torch.Tensor]
Place = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def _to_param(value: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    return value.to(device=param.device, dtype=param.dtype)


def optimizer_tensors(module: nn.Module, opt: torch.optim.Optimizer, gather: Gather = _identity) -> dict:
    """{"<param name>/<key>": tensor} of ``opt``'s state (add the "optim/" prefix when saving)."""
    out = {}
    for name, p in module.named_parameters():
        for key, value in opt.state.get(p, {}).items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            out[f"{name}/{key}"] = gather(value).detach().cpu()
    return out


def load_optimizer_tensors(module: nn.Module, opt: torch.optim.Optimizer, tensors: dict,
                           place: Place = _to_param) -> None:
    """Restore `optimizer_tensors`' output into ``opt`` (whose parameters are ``module``'s). Files of
    prime-core ≤ 0.1.0's single-process trainer keyed the state by parameter index ("optim/<i>/<key>"); the
    index is the parameter's position in ``module.parameters()``, so those are read too."""
    names = [name for name, _ in module.named_parameters()]
    by_name: dict[str, dict[str, torch.Tensor]] = {}
    for key in sorted(tensors):
        param, field = key.rsplit("/", 1)
        if param.isdigit() and int(param) < len(names):
            param = names[int(param)]
        by_name.setdefault(param, {})[field] = tensors[key]
    for name, p in module.named_parameters():
        state = by_name.get(name)
        if state:
            opt.state[p] = {k: (v.clone() if k == "step" else place(v, p)) for k, v in state.items()}
