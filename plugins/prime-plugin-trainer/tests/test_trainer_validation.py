"""Validation in the torch trainer: the bound at the right steps, equal to a direct evaluation of the saved weights
with the same rows and seed; best.safetensors; 2 processes under torchrun (rows sharded, sums all-reduced) report
the single process's numbers; TensorBoard events from rank 0 only."""

from __future__ import annotations

import json
import os

import pytest
import torch

from prime_core.api import (BEST_NAME, CHECKPOINT_NAME, Validator, build_dataset, get_registry, held_out_rows,
                            load_model, read_checkpoint)
from trainer_helpers import prime_cmd, run, torchrun_cmd, write_config

# toy-2d's valid split has 256 rows; 150 of them in chunks of 64 → 3 chunks (64, 64, 22): under 2 ranks one rank
# evaluates 2 chunks and the other 1 plus a discarded repeat
VALIDATE = dict(steps=8, batch_size=32, checkpoint_every=4,
                train_extra='eval_every = 3\neval_sequences = 150\nkeep = "both"', eval_extra="batch_size = 64")


def _valid(out) -> list[dict]:
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"), encoding="utf-8")]
    return [r for r in rows if "valid_nelbo" in r]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    res = run(prime_cmd("train", "--config", write_config(out / "c.toml", **VALIDATE), "--out", str(out / "run"),
                        "--quiet"))
    assert res.returncode == 0, res.stderr[-2000:]
    return out / "run"


def test_bound_at_eval_steps_equals_direct_evaluation_of_the_weights(single):
    rows = _valid(single)
    assert [r["step"] for r in rows] == [3, 6, 8]
    model, config, _ = load_model(str(single / CHECKPOINT_NAME))  # the weights of step 8, as validated
    held = held_out_rows(build_dataset(config).split("valid"), 150)
    metric = get_registry().build("metric", "nelbo")
    model.eval()
    with torch.no_grad():
        direct = Validator(metric, held, config.eval.mc_samples, 64).estimate(
            lambda r, g: metric.per_sequence(model, r, generator=g))
    assert rows[-1]["valid_nelbo"] == pytest.approx(direct.value, rel=1e-6)


def test_best_checkpoint_has_the_lowest_bound_and_the_ema(single):
    rows = _valid(single)
    best_row = min(rows, key=lambda r: r["valid_nelbo"])
    best = read_checkpoint(str(single / BEST_NAME))
    assert best.meta["train_state"]["step"] == best_row["step"]
    assert best.meta["valid"]["valid_nelbo"] == best_row["valid_nelbo"]
    assert best.group("ema") and not best.group("optim")
    assert read_checkpoint(str(single / CHECKPOINT_NAME)).meta["train_state"]["best_valid"]["step"] == best_row["step"]


@pytest.mark.slow  # ~30 s each on 2 shared cores
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_report_the_single_process_bound(single, tmp_path, parallel):
    pytest.importorskip("tensorboard")
    cfg = write_config(tmp_path / "c.toml", options={"parallel": parallel}, **{
        **VALIDATE, "train_extra": VALIDATE["train_extra"] + "\ntensorboard = true"})
    res = run(torchrun_cmd(2, "train", "--config", cfg, "--out", str(tmp_path / "run"), "--quiet"))
    assert res.returncode == 0, res.stderr[-3000:]
    got, ref = _valid(tmp_path / "run"), _valid(single)
    assert [r["step"] for r in got] == [r["step"] for r in ref]
    for a, b in zip(got, ref):  # same rows and noise; weights agree to ~1e-6 (test_trainer_torchrun)
        assert a["valid_nelbo"] == pytest.approx(b["valid_nelbo"], rel=1e-4) and a["valid_sequences"] == 150
    events = os.listdir(tmp_path / "run" / "tensorboard")
    assert len(events) == 1 and events[0].startswith("events.out.tfevents.")  # rank 0 alone
