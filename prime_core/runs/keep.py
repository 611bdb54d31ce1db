"""Which checkpoints a run folder keeps (``train.keep``) and the best-so-far validation bound.

- ``"last"`` (default): ``checkpoint.safetensors`` — weights, optimizer state and step of the latest save; the
  file ``--resume`` continues.
- ``"best"``: ``best.safetensors`` — the weights (and EMA) with the lowest validation bound B̂ seen so far
  (`prime_core.runs.validation`; lower is better: B̂ ≥ −log p_θ(x) / L in expectation). ``checkpoint.safetensors``
  is still written while the run goes on, so a killed run resumes; a run that finishes removes it and hands on
  ``best.safetensors``.
- ``"both"``: both files stay; the run hands on ``checkpoint.safetensors``.

``best.safetensors`` is written like the last checkpoint: to a temporary name, then renamed
(`prime_core.runs.checkpoint.save_checkpoint`). The best-so-far value is stored in the last checkpoint's
``train_state["best_valid"]``, so ``--resume`` compares against the same number the killed run did.
"""

from __future__ import annotations

import math
import os

import attrs

KEEP_CHOICES = ("last", "best", "both")
BEST_NAME = "best.safetensors"


def keeps_best(keep: str) -> bool:
    return keep in ("best", "both")


@attrs.define
class BestSoFar:
    """The lowest validation bound seen (nats/token) and its step; None before the first validation."""

    value: float | None = None
    step: int | None = None
    metric: str | None = None

    def improved_by(self, value: float) -> bool:
        """A new bound improves on the best when it is strictly lower (the first one always does)."""
        return math.isfinite(value) and (self.value is None or value < self.value)

    def update(self, value: float, step: int, metric: str) -> None:
        self.value, self.step, self.metric = float(value), int(step), metric

    def to_meta(self) -> dict | None:
        if self.value is None:
            return None
        return {"value": self.value, "step": self.step, "metric": self.metric}

    @classmethod
    def from_meta(cls, meta: dict | None) -> "BestSoFar":
        """From a checkpoint's ``train_state["best_valid"]`` (missing in checkpoints of runs without validation)."""
        if not isinstance(meta, dict) or not isinstance(meta.get("value"), (int, float)):
            return cls()
        return cls(float(meta["value"]), int(meta.get("step", 0)), meta.get("metric"))


def finish_keep(out_dir: str, last_url: str, keep: str, *, is_main: bool = True) -> str:
    """Apply ``keep`` once a run has finished; returns the checkpoint the run hands on. Only ``is_main`` (rank 0)
    removes anything; every rank returns the same path."""
    best_url = os.path.join(out_dir, BEST_NAME)
    if keep != "best" or not os.path.exists(best_url):  # never remove the only weights there are
        return last_url
    if is_main and os.path.exists(last_url):
        os.remove(last_url)
    return best_url
