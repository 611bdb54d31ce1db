"""A training run that diverges stops in one line and keeps its last good checkpoint (issue 23 item 6).

A NaN or ±inf training loss poisons the weights at the next optimizer step (the gradients, and their clipped norm,
are NaN too). `LossWatch` folds ``isfinite(loss)`` into a flag on the loss's device every step — no host sync per
step — and the trainers read it (one sync) before anything is written: a log row, a validation bound, a
checkpoint. So ``metrics.jsonl`` never holds a NaN loss and no checkpoint (``checkpoint.safetensors``,
``best.safetensors``) ever holds the diverged weights: the last one written stays the last good one.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..errors import PrimeError


class TrainingDiverged(PrimeError):
    """The training loss became NaN or ±inf: a one-line message, exit 2, the last good checkpoint kept."""


class LossWatch:
    """Is every training loss since the start finite? ``observe`` each step, ``check`` before writing anything."""

    def __init__(self, device: torch.device | str = "cpu"):
        self.finite = torch.ones((), dtype=torch.bool, device=device)
        self.saved_step: int | None = None  # the step of the last checkpoint this run wrote

    def observe(self, loss: torch.Tensor) -> None:
        """Fold isfinite(loss) into the flag, on the loss's device (no sync)."""
        self.finite &= torch.isfinite(loss.detach()).all().to(self.finite.device)

    def saved(self, step: int) -> None:
        self.saved_step = step

    def check(self, step: int, checkpoint: str, *,
              all_sum: Callable[[torch.Tensor], torch.Tensor] | None = None) -> None:
        """Raise `TrainingDiverged` if any loss so far was not finite. ``all_sum``: sums over processes (under
        torchrun), so every rank stops at the same step and none waits in a collective for the others."""
        bad = (~self.finite).double()
        if all_sum is not None:
            bad = all_sum(bad)
        if float(bad) == 0:
            return
        kept = (f"{checkpoint} keeps the last good weights (step {self.saved_step})" if self.saved_step is not None
                else "no checkpoint was written by this run")
        raise TrainingDiverged(f"training stopped at step {step}: the training loss became NaN or infinite; {kept}; "
                               f"lower train.lr or set train.grad_clip (> 0) and train again")
