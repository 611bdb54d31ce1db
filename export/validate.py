"""Parity of an exported step with eager torch: the same random masked inputs through both, compared.

Reports the largest absolute difference of the probabilities p_θ(x | y_t) and whether the sampled sub-token
ids y_s are identical (they are, unless an inverse-CDF comparison is decided by less than the numerical noise of
the two runtimes, ~1e-6 in float32).
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import torch

from .graph import example_inputs
from .step import INPUT_NAMES, SamplerStep

_NP = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@attrs.define
class Parity:
    batch: int
    max_abs_prob_error: float
    ids_identical: bool
    ids_mismatch: int  # sub-tokens that differ
    runtime: str = "onnxruntime"

    def line(self) -> str:
        probs = ("probabilities not exported (--no-probs)" if math.isnan(self.max_abs_prob_error)
                 else f"max |p_ort − p_torch| = {self.max_abs_prob_error:.3e}")
        return (f"batch {self.batch}: {probs}, sampled ids "
                f"{'identical' if self.ids_identical else f'DIFFER at {self.ids_mismatch} sub-tokens'}")


def ort_session(path: str, providers: list[str] | None = None, threads: int | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # fusions (FusedMatMul, FastGelu …)
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(path, opts, providers=providers or ["CPUExecutionProvider"])


def feeds(args: tuple) -> dict[str, np.ndarray]:
    return {name: a.detach().cpu().numpy() for name, a in zip(INPUT_NAMES, args)}


def compare(model, run, meta: dict, batches=(1, 5), seed: int = 0, runtime: str = "onnxruntime") -> list[Parity]:
    """Run ``run(feeds) -> [y_s, probs]`` and the eager step on the same random inputs for each batch size."""
    step_meta = meta["step"]
    noise_dtype, real_dtype = _NP[step_meta["noise_dtype"]], _NP[step_meta["real_dtype"]]
    nucleus = step_meta.get("nucleus", True)
    step = SamplerStep(model, noise_dtype=noise_dtype, with_probs=True, nucleus=nucleus).eval()
    out = []
    for i, batch in enumerate(batches):
        g = torch.Generator().manual_seed(seed * 1000 + i)
        args = example_inputs(model, batch, noise_dtype, real_dtype, generator=g)
        if not nucleus:
            args[7].fill_(1.0)
        with torch.no_grad():
            y_ref, p_ref = step(*args)
        got = run(feeds(args))
        y_got = np.asarray(got[0])
        mismatch = int((y_got != y_ref.numpy()).sum())
        err = float(np.abs(np.asarray(got[1], dtype=np.float64) - p_ref.double().numpy()).max()) \
            if len(got) > 1 else float("nan")
        out.append(Parity(batch, err, mismatch == 0, mismatch, runtime))
    return out


def compare_onnx(model, path: str, meta: dict, batches=(1, 5), seed: int = 0) -> list[Parity]:
    sess = ort_session(path)
    return compare(model, lambda f: sess.run(None, f), meta, batches, seed)
