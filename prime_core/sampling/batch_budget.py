"""How many rows a sampler runs together: the largest batch B whose per-step working set fits a memory budget.

One sampler step of B rows holds, per row: the backbone's activations for one all-mask row y_t [L, ℓ] (every
module's output, summed — more than is alive at once, so the estimate errs towards smaller batches) and the
keyed token draw over C classes at each of the L positions (log-probabilities in float32, then softmax weights,
their cumsum and the filtered scores in the draw's float64: L·C·(4 + 3·8) bytes). The weights are not counted:
they are there whatever B is.

    B = clamp(⌊budget / bytes_per_row⌋, 1, n)

so every row runs at once when the n rows fit (the fastest: one network call per step for all rows), and the
keyed randomness (`prime_core.counter_rng`) makes the tokens the same for every B. ``--batch-size`` overrides.
"""

from __future__ import annotations

import re

import torch

from ..diffusion.block import block_logits, is_block_model

from ..errors import PrimeError

DEFAULT_BUDGET_MIB = 1024  # `sample.memory_budget_mib`; `prime sample --memory-budget`
_DRAW_BYTES_PER_CLASS = 4 + 3 * 8  # float32 log p, then float64 weights, cumsum and scores
_UNITS = {"": 2**20, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
MAX_BUDGET = 2**50  # 1 PiB: anything above is a typo


def parse_budget(text: str) -> int:
    """"512M", "2GiB", "1.5G", "800MB" or a bare number of MiB → bytes (K/M/G/T and KiB/MiB/GiB/TiB are powers of
    1024, KB/MB/GB/TB powers of 1000). Refused with one line when it is not such a size or below 1 MiB."""
    m = _SIZE.match(str(text))
    unit = m.group(2).lower() if m else None
    if m is None or unit not in _UNITS:
        raise PrimeError(f"--memory-budget {text!r} is not a size: use a number with an optional unit "
                         "K/M/G/T (powers of 1024, also KiB…TiB) or KB/MB/GB/TB, e.g. 512M or 2GiB; a bare number "
                         "is MiB")
    size = int(float(m.group(1)) * _UNITS[unit])
    if not 2**20 <= size <= MAX_BUDGET:
        raise PrimeError(f"--memory-budget {text!r} must lie between 1 MiB and 1 PiB")
    return size


@torch.no_grad()
def bytes_per_row(model) -> int:
    """The working set of one row in one sampler step (module docstring): the summed outputs of every module of
    the network on one all-mask row, plus L·C·28 bytes for the head and the keyed draw."""
    total = 0

    def count(_module, _inputs, output):
        nonlocal total
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel() * t.element_size()

    device = next(model.parameters()).device
    y = torch.full((1, model.length, model.ell), model.mask_id, dtype=torch.long, device=device)
    hooks = [m.register_forward_hook(count) for m in model.modules() if m is not model]
    try:
        if is_block_model(model):  # its training forward over [y_t ; x₀]: above what a block's step needs
            block_logits(model, y, y)
        else:
            model(y, torch.ones(1, device=device))
    finally:
        for h in hooks:
            h.remove()
    return max(1, total + model.length * model.num_classes * _DRAW_BYTES_PER_CLASS)


def batch_rows(model, num_rows: int, budget_bytes: int) -> int:
    """B = clamp(⌊budget / bytes_per_row⌋, 1, n): every row at once when they fit."""
    return max(1, min(num_rows, budget_bytes // bytes_per_row(model)))
