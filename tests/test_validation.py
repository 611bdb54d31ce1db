"""Validation during training (simple trainer): the valid bound at the right steps, equal to a direct evaluation
on the same rows with the same seed; sharding over ranks; the best checkpoint; resume; TensorBoard; bad values."""

from __future__ import annotations

import json
import os
import math
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prime_core import ConfigError, PrimeError
from prime_core.api import (BEST_NAME, CHECKPOINT_NAME, BestSoFar, Validator, build_dataset, get_registry,
                            held_out_rows, load_config, load_model, read_checkpoint, save_checkpoint)
from prime_core.runs.evaluate import evaluate_metric
from prime_core.diffusion.losses import nelbo
from prime_core.runs.validation import chunk_seed

TINY = ["data.dataset=toy-markov", "data.options={num_classes = 6, length = 3, num_eval = 40}", "model.width=8",
        "model.backbone_options={hidden = 32, depth = 1}", "train.batch_size=16", "train.log_every=2",
        "train.checkpoint_every=100", "eval.mc_samples=2", "eval.batch_size=16", "train.eval_sequences=40"]


def tiny(*more: str):
    return load_config(None, TINY + list(more))


def fit(config, out, **kw):
    trainer = get_registry().build("trainer", config.train.trainer)
    return trainer.fit(config, out_dir=str(out), progress=False, **kw)


def rows_of(out) -> list[dict]:
    return [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"), encoding="utf-8")]


def valid_rows(out) -> list[dict]:
    return [r for r in rows_of(out) if "valid_nelbo" in r]


@pytest.fixture(scope="module")
def run_both(tmp_path_factory):
    """7 steps, validation every 3 (→ steps 3, 6 and the last, 7), both checkpoints kept."""
    out = tmp_path_factory.mktemp("both")
    url = fit(tiny("train.steps=7", "train.eval_every=3", 'train.keep="both"'), out)
    return out, url


def test_the_bound_is_logged_at_every_eval_step_and_the_last(run_both):
    out, url = run_both
    rows = valid_rows(out)
    assert [r["step"] for r in rows] == [3, 6, 7]
    for r in rows:
        assert r["valid_metric"] == "nelbo" and r["valid_sequences"] == 40 and r["valid_mc_samples"] == 2
        assert r["valid_nelbo_ppl_estimate"] == pytest.approx(math.exp(r["valid_nelbo"]))
        # the "≤" figure of an estimate is its 95 % upper confidence limit (docs/concepts.md), never exp(B̂)
        assert r["valid_nelbo_ppl_bound"] == pytest.approx(math.exp(r["valid_nelbo"] + 1.645 * r["valid_nelbo_stderr"]))
        assert r["valid_nelbo"] > 0 and r["valid_nelbo_stderr"] > 0
    assert url.endswith(CHECKPOINT_NAME)  # "both" hands on the last checkpoint


def test_the_last_bound_equals_a_direct_nelbo_on_those_rows_with_that_seed(run_both):
    """The final weights are the checkpoint's: rebuild them, pick the same rows, draw the same noise."""
    out, _ = run_both
    model, config, _ = load_model(str(out / CHECKPOINT_NAME))
    model.eval()
    rows = held_out_rows(build_dataset(config).split("valid"), config.train.eval_sequences)
    mc, bs = config.eval.mc_samples, config.eval.batch_size
    total = 0.0
    with torch.no_grad():
        for k in range(0, -(-len(rows) // bs)):  # 40 rows in chunks of 16: 3 chunks, each with its own seed
            g = torch.Generator().manual_seed(chunk_seed(0, k))
            chunk = rows[k * bs:(k + 1) * bs]
            total += sum(float(nelbo(model, chunk, generator=g).double().sum()) for _ in range(mc))
    expected = total / (mc * len(rows) * rows.shape[1])
    assert valid_rows(out)[-1]["valid_nelbo"] == pytest.approx(expected, rel=1e-9)


def test_one_chunk_is_exactly_prime_evals_estimator(run_both):
    out, _ = run_both
    model, config, _ = load_model(str(out / CHECKPOINT_NAME))
    model.eval()
    rows = held_out_rows(build_dataset(config).split("valid"), 40)
    metric = get_registry().build("metric", "nelbo")
    v = Validator(metric, rows, mc_samples=3, batch_size=64, seed=5)
    with torch.no_grad():
        got = v.estimate(lambda r, g: metric.per_sequence(model, r, generator=g))
    ref = evaluate_metric(metric, model, rows, mc_samples=3, batch_size=64, seed=5)
    assert got.value == pytest.approx(ref.value, rel=1e-12) and got.stderr == pytest.approx(ref.stderr, rel=1e-9)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 23), batch=st.integers(1, 9), world=st.integers(1, 5))
def test_shards_over_ranks_sum_to_the_single_process_value(n, batch, world):
    """Chunk k's noise is keyed by k, not by the rank: W ranks' partial sums add up to one process's, and every
    rank runs the same number of forward passes (DDP/FSDP forwards are collectives)."""
    rows = torch.arange(n * 2).view(n, 2) % 5

    class Metric:
        name, label, is_bound = "nelbo", "toy", True

    def per_sequence(chunk, g):  # a deterministic function of the rows and the chunk's generator
        return chunk.double().sum(-1) + torch.rand(len(chunk), generator=g, dtype=torch.float64)

    v = Validator(Metric(), rows, mc_samples=2, batch_size=batch)
    single = v.estimate(per_sequence)
    parts, calls = [], []
    for rank in range(world):
        plan = v.chunks_of(rank, world)
        calls.append(len(plan))
        captured = []
        v.estimate(per_sequence, rank=rank, world_size=world, all_sum=lambda s: captured.append(s.clone()) or
                   torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64))
        parts.append(captured[0])
    assert len(set(calls)) == 1
    total = torch.stack(parts).sum(0)
    assert float(total[2]) == n
    assert float(total[0]) / n == pytest.approx(single.value, rel=1e-12)


def test_held_out_rows_are_fixed_and_distinct():
    valid = torch.arange(100).view(50, 2)
    a, b = held_out_rows(valid, 10), held_out_rows(valid, 10)
    assert torch.equal(a, b) and len(set(a[:, 0].tolist())) == 10
    assert torch.equal(held_out_rows(valid, 80), valid)
    with pytest.raises(PrimeError, match="valid split is empty"):
        held_out_rows(valid[:0], 4)


def test_best_checkpoint_is_the_lowest_bound(run_both):
    out, _ = run_both
    rows = valid_rows(out)
    best_row = min(rows, key=lambda r: r["valid_nelbo"])
    best = read_checkpoint(str(out / BEST_NAME))
    assert best.meta["train_state"]["step"] == best_row["step"]
    assert best.meta["valid"]["valid_nelbo"] == best_row["valid_nelbo"]
    assert not best.group("optim") and best.group("model")  # weights only
    last = read_checkpoint(str(out / CHECKPOINT_NAME)).meta["train_state"]["best_valid"]
    assert last == {"value": best_row["valid_nelbo"], "step": best_row["step"], "metric": "nelbo"}


def test_best_weights_reproduce_their_bound(tmp_path):
    """best.safetensors holds the weights of the step it names: re-validating them gives its logged value."""
    cfg = tiny("train.steps=4", "train.eval_every=1", 'train.keep="best"')
    url = fit(cfg, tmp_path)
    assert url.endswith(BEST_NAME) and not os.path.exists(tmp_path / CHECKPOINT_NAME)  # "best" keeps only best
    model, config, ckpt = load_model(url)
    model.eval()
    rows = held_out_rows(build_dataset(config).split("valid"), config.train.eval_sequences)
    metric = get_registry().build("metric", "nelbo")
    v = Validator(metric, rows, config.eval.mc_samples, config.eval.batch_size)
    with torch.no_grad():
        value = v.estimate(lambda r, g: metric.per_sequence(model, r, generator=g)).value
    assert value == pytest.approx(ckpt.meta["valid"]["valid_nelbo"], rel=1e-9)


def test_keep_last_writes_no_best_file(tmp_path):
    fit(tiny("train.steps=3", "train.eval_every=1"), tmp_path)
    assert not os.path.exists(tmp_path / BEST_NAME) and len(valid_rows(tmp_path)) == 3


def test_no_validation_by_default(tmp_path):
    fit(tiny("train.steps=3"), tmp_path)
    assert not valid_rows(tmp_path) and rows_of(tmp_path)


def test_resume_keeps_the_best_so_far(tmp_path):
    """A checkpoint whose best-so-far is unbeatable (0 nats: no NELBO estimate is below it): after --resume no
    validation may replace best.safetensors, and the value survives into the new checkpoint."""
    fit(tiny("train.steps=3", "train.eval_every=1", 'train.keep="both"'), tmp_path)
    url = str(tmp_path / CHECKPOINT_NAME)
    ckpt = read_checkpoint(url)
    ckpt.meta["train_state"]["best_valid"] = {"value": 0.0, "step": 2, "metric": "nelbo"}
    save_checkpoint(url, ckpt.tensors, {k: v for k, v in ckpt.meta.items() if k not in ("format", "format_version")})
    best_before = read_checkpoint(str(tmp_path / BEST_NAME)).meta["train_state"]["step"]
    fit(tiny("train.steps=6", "train.eval_every=1", 'train.keep="both"'), tmp_path, resume=True)
    assert [r["step"] for r in valid_rows(tmp_path)] == [1, 2, 3, 4, 5, 6]
    assert read_checkpoint(str(tmp_path / BEST_NAME)).meta["train_state"]["step"] == best_before
    assert read_checkpoint(url).meta["train_state"]["best_valid"]["value"] == 0.0


def test_best_so_far_round_trips_and_compares():
    b = BestSoFar()
    assert b.to_meta() is None and b.improved_by(5.0) and not b.improved_by(float("nan"))
    b.update(2.0, 7, "nelbo")
    assert not b.improved_by(2.0) and b.improved_by(1.9)
    assert BestSoFar.from_meta(b.to_meta()) == b and BestSoFar.from_meta(None) == BestSoFar()


def test_loss_plot_and_report_show_the_validation_bound(run_both, tmp_path):
    pytest.importorskip("matplotlib")
    from prime_core.runs.report import plot_loss_curve, read_metrics, write_report_markdown

    out, _ = run_both
    train, valid = read_metrics(str(out / "metrics.jsonl"))
    assert [r["step"] for r in valid] == [3, 6, 7] and all("loss" in r for r in train)
    assert plot_loss_curve(str(out / "metrics.jsonl"), str(tmp_path / "loss.png")) == str(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 0
    (tmp_path / "metrics.jsonl").write_text((out / "metrics.jsonl").read_text())
    report = {"ell": 2, "base": 3, "num_classes": 6, "tokens_per_sequence": 3, "train_seconds": 1.0, "metrics": [],
              "sampling": {"num_samples": 1, "steps": 2, "nfe_mean": 2.0, "idle_ratio": 0.0,
                           "draw_dtype": "float64"}, "samples": []}
    write_report_markdown(str(tmp_path / "report.md"), tiny(), report, None)
    text = (tmp_path / "report.md").read_text()
    best = min(valid, key=lambda r: r["valid_nelbo"])
    assert f"best {best['valid_nelbo']:.4f} ± " in text and f"at step {best['step']} (PPL ≤ " in text
    assert "95 % upper confidence limit" in text and "Monte-Carlo draws each" in text
    assert "training loss and validation bound" in text


# ------------------------------------------------------------------------------------------------ TensorBoard
def test_tensorboard_event_files_hold_the_curves(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit(tiny("train.steps=4", "train.eval_every=2", "train.tensorboard=true"), tmp_path)
    logdir = tmp_path / "tensorboard"
    assert any(name.startswith("events.out.tfevents.") for name in os.listdir(logdir))
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    valid = acc.Scalars("valid/nelbo")
    assert [e.step for e in valid] == [2, 4]
    assert [e.value for e in valid] == pytest.approx([r["valid_nelbo"] for r in valid_rows(tmp_path)], rel=1e-6)
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4]
    assert "valid/nelbo_ppl_bound" in acc.Tags()["scalars"]


def test_missing_tensorboard_is_one_line_naming_the_extra_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard → ImportError
    out = tmp_path / "run"
    with pytest.raises(PrimeError) as err:
        fit(tiny("train.steps=2", "train.tensorboard=true"), out)
    msg = str(err.value)
    assert "\n" not in msg and "pip install 'prime-core[tensorboard]'" in msg and "train.tensorboard" in msg
    assert not out.exists()


def test_force_removes_the_previous_runs_best_and_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    fit(tiny("train.steps=2", "train.eval_every=1", 'train.keep="both"', "train.tensorboard=true"), tmp_path)
    (tmp_path / "tensorboard" / "notes.txt").write_text("mine")
    fit(tiny("train.steps=2"), tmp_path, force=True)
    assert not (tmp_path / BEST_NAME).exists()
    assert os.listdir(tmp_path / "tensorboard") == ["notes.txt"]  # only TensorBoard's own files went


# ------------------------------------------------------------------------------------------------ bad values
@pytest.mark.parametrize("override, message", [
    ("train.eval_every=-1", "train.eval_every must be ≥ 0, got -1"),
    ("train.eval_every=2.5", "train.eval_every must be a whole number, got 2.5"),
    ("train.eval_sequences=0", "train.eval_sequences must be ≥ 1, got 0"),
    ('train.keep="bogus"', "train.keep must be one of last, best, both, got 'bogus'"),
    ('train.keep="best"', "train.keep='best' picks the best checkpoint by the validation bound, which needs "
                          "train.eval_every > 0"),
    ('train.tensorboard="yes"', "train.tensorboard must be true or false, got 'yes'"),
])
def test_bad_values_are_one_line_config_errors(override, message):
    with pytest.raises(ConfigError) as err:
        tiny(override)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_bad_value_exits_2_with_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "prime_core", "train", "--out", str(tmp_path / "r"), "--set",
                          "train.eval_every=-1"], capture_output=True, text=True,
                         env=dict(os.environ, PRIME_LOAD_PLUGINS=""))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prime: error:") and "train.eval_every must be ≥ 0" in lines[0]
    assert not (tmp_path / "r").exists()


def test_resume_may_change_how_often_it_validates_but_not_the_rows(tmp_path):
    from prime_core.runs.config import check_resume_config

    saved = tiny("train.eval_every=2").to_dict()
    check_resume_config(saved, tiny("train.eval_every=5", 'train.keep="both"', "train.tensorboard=true"), "x")
    with pytest.raises(ConfigError, match="train.eval_sequences"):
        check_resume_config(saved, tiny("train.eval_sequences=7"), "x")
    current = tiny("train.eval_sequences=256")  # every new key at its default
    old = current.to_dict()  # a checkpoint written before these keys existed resumes with their defaults
    for key in ("eval_every", "eval_sequences", "keep", "tensorboard"):
        del old["train"][key]
    check_resume_config(old, current, "x")
    with pytest.raises(ConfigError, match="train.eval_sequences"):  # … but not with other values
        check_resume_config(old, tiny(), "x")
