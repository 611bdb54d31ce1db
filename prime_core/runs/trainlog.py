"""A training run's log: rows of ``metrics.jsonl`` and, with ``train.tensorboard = true``, TensorBoard scalars.

Rows are JSON objects with a ``step``: training rows (``loss`` = the training objective of ``loss_name``,
``lr``, ``tokens_per_s`` …) and validation rows (`prime_core.runs.validation.ValidBound.row`: ``valid_nelbo`` and
``valid_nelbo_ppl_bound`` …). TensorBoard gets every numeric field of a row as a scalar under ``train/…`` or
``valid/…`` at that step, in ``<out>/tensorboard`` (written through ``torch.utils.tensorboard``; the
``tensorboard`` package comes with the ``[tensorboard]`` extra). Only rank 0 writes (``enabled``).

A resumed run first drops the rows after its checkpoint (`prime_core.runs.rundir.trim_metrics`) and tells TensorBoard
to purge events from the replayed steps (``purge_step``), so neither log shows a step twice.
"""

from __future__ import annotations

import json
import os

from ..extras import require
from .rundir import trim_metrics

TENSORBOARD_DIR = "tensorboard"
METRICS_NAME = "metrics.jsonl"


def require_tensorboard(extra: str):
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line `PrimeError` naming ``extra``. Call it before the
    run writes anything, on every rank (so all of them stop, not only rank 0)."""
    require("tensorboard", extra, "train.tensorboard = true (TensorBoard event files)")
    return require("torch.utils.tensorboard", extra, "train.tensorboard = true (TensorBoard event files)").SummaryWriter


class TrainLog:
    """Appends rows to ``<out>/metrics.jsonl`` (and TensorBoard when ``tensorboard_extra`` is given)."""

    def __init__(self, out_dir: str, *, start_step: int, tensorboard_extra: str | None = None,
                 enabled: bool = True):
        self.path = os.path.join(out_dir, METRICS_NAME)
        self._fh = self._tb = None
        if not enabled:
            return
        trim_metrics(self.path, start_step)
        self._fh = open(self.path, "a", encoding="utf-8")
        if tensorboard_extra is not None:
            writer = require_tensorboard(tensorboard_extra)
            # purge_step: events at steps > start_step are from a killed run's replayed tail
            self._tb = writer(os.path.join(out_dir, TENSORBOARD_DIR),
                              purge_step=start_step + 1 if start_step else None)

    def write(self, row: dict, *, group: str) -> None:
        """One row (``group`` = "train" or "valid" names its TensorBoard section)."""
        if self._fh is None:
            return
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()
        if self._tb is not None:
            step = int(row["step"])
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(f"{group}/{key.removeprefix(group + '_')}", value, step)
            self._tb.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
