"""SIGKILL mid-run, then --resume: the result is bit-identical to an uninterrupted run (CPU, one thread).

Exact equality holds because everything after the checkpoint is a function of the checkpoint: the data order and
the noise of step n come from (seed, step), dropout's RNG is reseeded per micro-batch, and the weights, EMA and
Adam moments are restored as stored tensors (under FSDP each rank cuts its own shard from the full tensor).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from prime_core import read_checkpoint
from trainer_helpers import checkpoint_tensors, prime_cmd, run, subprocess_env, torchrun_cmd, write_config

STEPS = 120


def _descendants(pid: int) -> list[int]:
    """pid and every process below it (torchrun's workers outlive a SIGKILLed agent otherwise)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if ppid == current:
                    todo.append(int(entry))
    return found


def _kill_after_first_checkpoint(cmd: list[str], ckpt) -> None:
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        for pid in _descendants(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]


@pytest.mark.parametrize("launcher", [
    "python",
    pytest.param("torchrun-fsdp", marks=pytest.mark.slow),
])
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds torchrun's workers through /proc")
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, launcher):
    options = {"parallel": "fsdp"} if launcher == "torchrun-fsdp" else {}
    cfg = write_config(tmp_path / "c.toml", steps=STEPS, batch_size=64, checkpoint_every=10, options=options)

    def cmd(*args):
        return torchrun_cmd(2, *args) if launcher == "torchrun-fsdp" else prime_cmd(*args)

    killed, whole = tmp_path / "killed", tmp_path / "whole"
    ckpt = killed / "checkpoint.safetensors"
    _kill_after_first_checkpoint(cmd("train", "--config", cfg, "--out", str(killed), "--quiet"), ckpt)
    stopped_at = read_checkpoint(str(ckpt)).meta["train_state"]["step"]
    assert 0 < stopped_at < STEPS  # really killed mid-run

    res = run(cmd("train", "--config", cfg, "--out", str(killed), "--resume", "--quiet"))
    assert res.returncode == 0, res.stderr[-2000:]
    ref = run(cmd("train", "--config", cfg, "--out", str(whole), "--quiet"))
    assert ref.returncode == 0, ref.stderr[-2000:]

    a, b = checkpoint_tensors(str(ckpt)), checkpoint_tensors(str(whole / "checkpoint.safetensors"))
    assert set(a) == set(b) and any(k.startswith("ema/") for k in a)
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]
    # the resumed log has every step once, with the uninterrupted run's losses
    rows = [json.loads(line) for line in open(killed / "metrics.jsonl")]
    ref_rows = [json.loads(line) for line in open(whole / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    assert [r["loss"] for r in rows] == [r["loss"] for r in ref_rows]
