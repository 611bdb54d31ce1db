"""2 CPU processes under torchrun (gloo) == 1 process with the same global batch.

Both runs see the same rows and the same noise for every step (drawn for the whole global batch from
(seed, step), then split), and the same initial weights (seeded). What differs is fp32 summation order: each
rank sums half the rows and the all-reduce adds the halves. Adam normalises its step, so such O(1e-7) relative
gradient differences stay O(1e-7 · lr) per step; measured ≈ 1e-6 relative after 24 steps. The bound 1e-4 is
100× that and far below what a real bug gives: the Adam moments "optim/…" are compared too and they scale with
the gradient, so a wrong loss scale across ranks, duplicated rows or per-rank noise shows up at O(1).
"""

from __future__ import annotations

import json
import os

import pytest

from trainer_helpers import checkpoint_tensors, max_relative_gap, prime_cmd, run, torchrun_cmd, write_config


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process run, shared by both parametrisations."""
    out = tmp_path_factory.mktemp("reference")
    res = run(prime_cmd("train", "--config", write_config(out / "ref.toml"), "--out", str(out), "--quiet"))
    assert res.returncode == 0, res.stderr[-2000:]
    return out


@pytest.mark.parametrize("parallel, grad_accum", [("ddp", 1), ("fsdp", 2)])
def test_two_processes_match_one(make_config, tmp_path, reference, parallel, grad_accum):
    cfg = make_config("dist.toml", options={"parallel": parallel, "grad_accum": grad_accum})
    dist = run(torchrun_cmd(2, "train", "--config", cfg, "--out", str(tmp_path / "dist"), "--quiet"))
    assert dist.returncode == 0, dist.stderr[-3000:]
    a = checkpoint_tensors(str(tmp_path / "dist" / "checkpoint.safetensors"))
    b = checkpoint_tensors(str(reference / "checkpoint.safetensors"))
    gap, name = max_relative_gap(a, b)
    print(f"{parallel} × 2 processes, grad_accum {grad_accum}: max relative gap {gap:.2e} ({name})")
    assert gap <= 1e-4, (name, gap)
    rows = [json.loads(line) for line in open(tmp_path / "dist" / "metrics.jsonl")]
    ref_rows = [json.loads(line) for line in open(reference / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]  # rank 0 alone wrote the log
    assert all(r["world_size"] == 2 for r in rows)
    for r, s in zip(rows, ref_rows):
        assert r["loss"] == pytest.approx(s["loss"], rel=1e-5)
        assert r["grad_norm"] == pytest.approx(s["grad_norm"], rel=1e-4)
    assert os.path.exists(tmp_path / "dist" / "loss.png")
