"""Helpers for the torch trainer's tests: a tiny toy-2d config, CLI runs as subprocesses, tensor comparison.

(A uniquely named module, not conftest.py: several test folders share one pytest session.)
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch

from prime_core import read_checkpoint

BASE = """
[model]
ell = 2
width = 16
backbone = "mlp"
backbone_options = {{ hidden = 64, depth = 2 }}

[data]
dataset = "toy-2d"
options = {{ size = 16, num_train = 4096, num_eval = 256 }}

[train]
trainer = "torch"
steps = {steps}
batch_size = {batch_size}
lr = 3e-3
warmup = 4
log_every = 4
checkpoint_every = {checkpoint_every}
options = {options}
{train_extra}

[sample]
steps = 8
num_samples = 16

[eval]
mc_samples = 1
tstep_steps = 8
max_sequences = 64
{eval_extra}
"""


def toml_inline(options: dict) -> str:
    def fmt(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        return f'"{v}"' if isinstance(v, str) else repr(v)
    return "{ " + ", ".join(f"{k} = {fmt(v)}" for k, v in options.items()) + " }"


def write_config(path, *, steps=24, batch_size=32, checkpoint_every=8, options=None, train_extra="",
                 eval_extra="") -> str:
    """``train_extra`` / ``eval_extra``: more TOML lines for [train] / [eval], e.g. "eval_every = 4"."""
    path.write_text(BASE.format(steps=steps, batch_size=batch_size, checkpoint_every=checkpoint_every,
                                options=toml_inline({"ema": 0.9, **(options or {})}), train_extra=train_extra,
                                eval_extra=eval_extra))
    return str(path)


def subprocess_env() -> dict:
    """One thread per process, as torchrun sets it, so float results do not depend on how runs are launched;
    only this plugin is loaded (faster start-up)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "PRIME_LOAD_PLUGINS": "trainer"}


def prime_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "prime_core", *args]


def torchrun_cmd(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "prime_core", *args]


def run(cmd: list[str], timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=timeout)


def checkpoint_tensors(path: str) -> dict[str, torch.Tensor]:
    return read_checkpoint(path).tensors


def max_relative_gap(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, str]:
    """max over tensors of ‖a − b‖∞ / max(‖b‖∞, 1e-12), and the worst tensor's name."""
    assert set(a) == set(b), sorted(set(a) ^ set(b))
    worst, name = 0.0, ""
    for k in a:
        x, y = a[k].double(), b[k].double()
        gap = float((x - y).abs().max() / y.abs().max().clamp_min(1e-12)) if y.numel() else 0.0
        if gap > worst:
            worst, name = gap, k
    return worst, name
