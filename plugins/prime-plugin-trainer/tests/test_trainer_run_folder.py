"""The torch trainer's run folder: one writer (rank 0 holds the lock, every rank learns the outcome), ``--force``
that leaves no old checkpoint behind a killed new run, local ``--out`` only, bit-identical seeded runs."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time

import pytest
import torch

from prime_core.cli.app import main
from prime_core.runs.rundir import LOCK_NAME, claim
from trainer_helpers import checkpoint_tensors, prime_cmd, run, subprocess_env, torchrun_cmd, write_config


def _digests(folder) -> dict[str, str]:
    return {p: hashlib.sha256(open(os.path.join(folder, p), "rb").read()).hexdigest()
            for p in sorted(os.listdir(folder))}


def _one_line_error(capsys, fragment):
    err = capsys.readouterr().err.strip()
    assert err.startswith("prime: error:") and "\n" not in err and fragment in err, err


def test_under_torchrun_every_rank_refuses_a_folder_another_process_writes(tmp_path):
    cfg = write_config(tmp_path / "c.toml", steps=4, checkpoint_every=4, options={"parallel": "ddp"})
    out = tmp_path / "run"
    with claim(str(out)):  # this test process is "another prime process"
        before = _digests(out)
        started = time.monotonic()
        res = run(torchrun_cmd(2, "train", "--config", cfg, "--out", str(out), "--quiet"), timeout=180)
        assert res.returncode != 0
        message = f"prime: error: {out} is being written by another prime process (pid {os.getpid()})"
        assert res.stderr.count(message) == 2, res.stderr[-3000:]  # rank 0 and rank 1, neither left waiting
        assert time.monotonic() - started < 120
        assert _digests(out) == before


def _paused_when_relogging(cmd: list[str], metrics) -> subprocess.Popen:
    """Start ``cmd`` and SIGSTOP it once it has replaced the old metrics.jsonl with its own first row."""
    old = os.stat(metrics)
    proc = subprocess.Popen(cmd, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            now = os.stat(metrics)
            fresh = (now.st_ino, now.st_mtime_ns) != (old.st_ino, old.st_mtime_ns) and now.st_size > 0
        except FileNotFoundError:
            fresh = False
        if fresh and open(metrics).read().endswith("\n"):
            os.kill(proc.pid, signal.SIGSTOP)
            return proc
        time.sleep(0.002)
    proc.kill()
    raise AssertionError(f"the --force run never logged: {proc.stderr.read().decode()[-2000:]}")


def test_force_run_killed_before_its_first_checkpoint_then_restarted(tmp_path, capsys):
    """--force removes the old checkpoint once the new run is under way (a killed new run must not leave the old
    checkpoint beside the new log); the second writer meanwhile is refused; the killed run's stale lock blocks
    nobody, and the restarted run equals a fresh run of the same config bit for bit."""
    old_cfg = write_config(tmp_path / "old.toml", steps=8, checkpoint_every=4)
    cfg = write_config(tmp_path / "new.toml", steps=24, checkpoint_every=24)
    out, whole = tmp_path / "run", tmp_path / "whole"
    assert main(["train", "--config", old_cfg, "--out", str(out), "--quiet"]) == 0
    proc = _paused_when_relogging(prime_cmd("train", "--config", cfg, "--out", str(out), "--force", "--quiet"),
                                  out / "metrics.jsonl")
    try:
        assert not (out / "checkpoint.safetensors").exists(), "the old run's checkpoint outlived --force"
        assert main(["train", "--config", cfg, "--out", str(out), "--force", "--quiet"]) == 2
        _one_line_error(capsys, f"is being written by another prime process (pid {proc.pid})")
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert (out / LOCK_NAME).exists()
    assert main(["train", "--config", cfg, "--out", str(out), "--resume", "--quiet"]) == 2
    _one_line_error(capsys, "nothing to resume")
    assert main(["train", "--config", cfg, "--out", str(out), "--quiet"]) == 0
    assert main(["train", "--config", cfg, "--out", str(whole), "--quiet"]) == 0
    a = checkpoint_tensors(str(out / "checkpoint.safetensors"))
    b = checkpoint_tensors(str(whole / "checkpoint.safetensors"))
    assert set(a) == set(b) and any(k.startswith("ema/") for k in a)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert not (out / LOCK_NAME).exists()


@pytest.mark.parametrize("url, fragment", [
    ("memory://run", "run folders must be local"),
    ("s3://bucket/run", "run folders must be local"),
])
def test_out_urls_are_refused_before_training(tmp_path, monkeypatch, capsys, url, fragment):
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path / "c.toml", steps=4)
    assert main(["train", "--config", cfg, "--out", url, "--quiet"]) == 2
    _one_line_error(capsys, fragment)
    assert os.listdir(tmp_path) == ["c.toml"]
