"""SIGKILL mid-run, then --resume: the result is bit-identical to an uninterrupted run (CPU, one thread).

Exact equality holds because everything after the checkpoint is a function of the checkpoint: the data order and
the noise of step n come from (seed, step), dropout's RNG is reseeded per micro-batch, and the weights, EMA and
Adam moments are restored as stored tensors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import torch

from trainer_helpers import checkpoint_tensors, prime_cmd, run, subprocess_env, write_config
from prime_core import read_checkpoint

STEPS = 120


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    cfg = write_config(tmp_path / "c.toml", steps=STEPS, batch_size=64, checkpoint_every=10)
    killed, whole = tmp_path / "killed", tmp_path / "whole"
    ckpt = killed / "checkpoint.safetensors"
    proc = subprocess.Popen(prime_cmd("train", "--config", cfg, "--out", str(killed), "--quiet"),
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 180
        while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    stopped_at = read_checkpoint(str(ckpt)).meta["train_state"]["step"]
    assert 0 < stopped_at < STEPS  # really killed mid-run

    res = run(prime_cmd("train", "--config", cfg, "--out", str(killed), "--resume", "--quiet"))
    assert res.returncode == 0, res.stderr[-2000:]
    ref = run(prime_cmd("train", "--config", cfg, "--out", str(whole), "--quiet"))
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
