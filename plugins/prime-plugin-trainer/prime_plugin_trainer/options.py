"""The torch trainer's options: validated keys of ``[train] options = {...}`` (one-line errors).

The learning-rate fields shared by every trainer (lr, warmup, weight_decay, grad_clip, batch_size, steps, seed,
checkpoint_every, log_every) stay in `TrainConfig`; what only this trainer understands lives here.
"""

from __future__ import annotations

from typing import Any

import attrs

from prime_core.api import ConfigError, OptionChecks


#: the core's validators, naming each field as users write it (train.options.ema)
_checks = OptionChecks("train.options")
_one_of, _int_at_least, _unit_interval, _device, _bool = (_checks.one_of, _checks.int_at_least, _checks.unit_interval,
                                                           _checks.device, _checks.flag)


@attrs.frozen
class TrainerOptions:
    """schedule: LR after linear warmup — "constant", or "cosine" decay to 0 at ``train.steps``.
    grad_accum: micro-batches per process per step; the global batch ``train.batch_size`` = B is split into
        world_size × grad_accum equal micro-batches (B must divide evenly).
    ema: decay β of the weight EMA θ̄ ← β θ̄ + (1 − β) θ after every optimizer step (0 = off); saved as "ema/…".
    precision: "auto" (bf16 autocast on CUDA, fp32 on CPU), "fp32", or "bf16" (autocast on any device).
    compile: wrap the backbone's forward in torch.compile.
    parallel: "ddp" or "fsdp" (FSDP2 ``fully_shard``), used when launched with more than one process.
    device: "auto" (cuda:LOCAL_RANK when CUDA is available, else cpu), "cpu", "cuda" (cuda:LOCAL_RANK) or
        "cuda:N" — the vocabulary of every ``--device`` (`prime_core.api.resolve_device`); ``prime train --device``
        sets it.
    order: which training windows step n reads: "random" (per-epoch permutations keyed by (seed, epoch)) or
        "sequential" (windows nB … nB + B − 1, wrapping around).
    prefetch: read step n + 1's rows on a background thread while step n trains.
    """

    schedule: str = attrs.field(default="constant", validator=_one_of("constant", "cosine"))
    grad_accum: int = attrs.field(default=1, validator=_int_at_least(1))
    ema: float = attrs.field(default=0.999, validator=_unit_interval)
    precision: str = attrs.field(default="auto", validator=_one_of("auto", "fp32", "bf16"))
    compile: bool = attrs.field(default=False, validator=_bool)
    parallel: str = attrs.field(default="ddp", validator=_one_of("ddp", "fsdp"))
    device: str = attrs.field(default="auto", validator=_device)
    order: str = attrs.field(default="random", validator=_one_of("random", "sequential"))
    prefetch: bool = attrs.field(default=True, validator=_bool)

    @classmethod
    def from_dict(cls, options: dict[str, Any]) -> "TrainerOptions":
        allowed = [f.name for f in attrs.fields(cls)]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown train.options key(s) {', '.join(unknown)} for the torch trainer; "
                              f"allowed: {', '.join(allowed)}")
        return cls(**options)
