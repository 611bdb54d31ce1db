"""Calibration rows for static int8 (``prime export onnx CKPT -o OUT --int8 --calibration-rows N``).

Static quantization fixes each activation's int8 scale ahead of time from the ranges the step sees on
calibration inputs (ONNX Runtime's MinMax calibration), instead of measuring every batch at run time as dynamic
quantization does. The inputs must look like what the sampler feeds the step, so they are built from the
checkpoint's own data set (`dataset_for_checkpoint`, the rows of its training split):

- x: N rows drawn (seeded) from the split, mapped to sub-tokens y₀ = f(x) [N, L, ℓ];
- t ~ U(0, 1) per row and α_t = α(t) from the model's schedule; each sub-token is masked with probability
  1 − α_t (the forward process, DESIGN §2), so the step sees every masking level from clean to all-masked;
- α_s = α(max(t − 1/T, 0)) with T = the checkpoint's ``sample.steps`` (one step of the sampler's grid), the reveal
  uniforms, the revealing positions by the exported reveal rule, and the token-draw uniforms at those positions;
  temperature and top-p are the checkpoint's sampler defaults.

The rows are fed in batches of `CALIBRATION_BATCH`. Nothing here is random without a seed: the same checkpoint and
N give the same calibration, so the same int8 graph.
"""

from __future__ import annotations

import numpy as np
import torch

from prime_core.api import PrimeError, dataset_for_checkpoint

from .step import reveal_rule, revealing_positions

#: rows per calibration batch (the step's batch axis is dynamic; ranges are pooled over all batches)
CALIBRATION_BATCH = 8


def calibration_rows(model, config, ckpt_meta: dict, rows: int, *, locations: dict | None = None,
                     seed: int = 0) -> torch.Tensor:
    """``rows`` token rows x [rows, L] from the checkpoint's data set (training split), drawn with ``seed``; with
    replacement only when the split holds fewer rows. A data set that cannot be built (a location the checkpoint
    does not carry) is the data set's one-line error, naming ``--data-option``."""
    dataset = dataset_for_checkpoint(config, ckpt_meta.get("data"), locations=locations, need_data=True,
                                     flag="--data-option")
    split = dataset.split("train")
    n = len(split)
    if n == 0:
        raise PrimeError("--calibration-rows: the checkpoint's data set has no training rows to calibrate on")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(n, generator=g)[:rows] if n >= rows else torch.randint(0, n, (rows,), generator=g)
    tokens = torch.as_tensor(split[idx]).long()
    if tokens.shape[1:] != (model.length,):
        raise PrimeError(f"--calibration-rows: the data set's rows have length {tokens.shape[1]}, the model "
                         f"L = {model.length}")
    return tokens


def step_feeds(model, config, tokens: torch.Tensor, *, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """The step's inputs (export.step.INPUT_NAMES) for clean rows ``tokens`` [N, L], noised at random t (module
    docstring), in batches of `CALIBRATION_BATCH`: a list of {input name: tensor}."""
    g = torch.Generator().manual_seed(seed + 1)
    steps = max(int(config.sample.steps or 1), 1)
    units = 1 if model.grouped else model.ell
    feeds = []
    for batch in tokens.split(CALIBRATION_BATCH):
        b = len(batch)
        y = model.map.digit_table("cpu")[batch]  # [B, L, ℓ]
        t = torch.rand(b, generator=g, dtype=torch.float64)
        a_t = model.schedule.alpha(t).double()
        a_s = model.schedule.alpha((t - 1.0 / steps).clamp(min=0.0)).double()
        masked = torch.rand(y.shape, generator=g, dtype=torch.float64) >= a_t[:, None, None]  # P = 1 − α_t
        y = y.masked_fill(masked, model.mask_id)
        u_reveal = torch.rand(b, model.length, units, generator=g, dtype=torch.float64)
        positions = revealing_positions(reveal_rule(y, a_t, a_s, u_reveal, model.mask_id))
        feeds.append({"y": y, "t": t.float(), "alpha_t": a_t, "alpha_s": a_s, "u_reveal": u_reveal,
                      "u_token": torch.rand(len(positions), generator=g, dtype=torch.float64),
                      "temperature": torch.full((b,), float(config.sample.temperature)),
                      "top_p": torch.full((b,), float(config.sample.top_p)), "positions": positions})
    return feeds


class StepCalibrationReader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over `step_feeds`, each input cast to the dtype the
    graph declares (the exported dtypes depend on --draw-dtype)."""

    def __init__(self, onnx_path: str, feeds: list[dict[str, torch.Tensor]]) -> None:
        import onnxruntime as ort

        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        self._dtypes = {}
        for inp in session.get_inputs():
            numpy_type = inp.type[len("tensor("):-1]
            self._dtypes[inp.name] = np.dtype({"float": "float32", "double": "float64"}.get(numpy_type, numpy_type))
        del session
        self._feeds = feeds
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._feeds):
            return None
        feed = self._feeds[self._next]
        self._next += 1
        return {k: v.numpy().astype(self._dtypes[k]) for k, v in feed.items() if k in self._dtypes}

    def rewind(self) -> None:
        self._next = 0
