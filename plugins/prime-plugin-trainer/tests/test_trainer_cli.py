"""Bad input through the CLI: one line on stderr, exit 2, nothing overwritten; and `prime run` with this trainer."""

from __future__ import annotations

import hashlib

import pytest

from trainer_helpers import prime_cmd, run, write_config
from prime_core.runs.build import load_model
from prime_core.cli.app import main


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def trained(tmp_path):
    cfg = write_config(tmp_path / "c.toml", steps=8, checkpoint_every=4)
    out = tmp_path / "run"
    assert main(["train", "--config", cfg, "--out", str(out), "--quiet"]) == 0
    return cfg, out


def _one_line_error(capsys, fragment):
    err = capsys.readouterr().err.strip()
    assert err.startswith("prime: error:") and "\n" not in err and fragment in err, err


def test_existing_checkpoint_needs_resume_or_force(trained, capsys):
    cfg, out = trained
    before = _digest(out / "checkpoint.safetensors"), _digest(out / "metrics.jsonl")
    assert main(["train", "--config", cfg, "--out", str(out), "--quiet"]) == 2
    _one_line_error(capsys, "exists; pass --resume to continue it or --force to start over")
    assert (_digest(out / "checkpoint.safetensors"), _digest(out / "metrics.jsonl")) == before


def test_resume_with_a_different_config_is_refused(trained, capsys):
    cfg, out = trained
    before = _digest(out / "checkpoint.safetensors"), _digest(out / "metrics.jsonl")
    assert main(["train", "--config", cfg, "--set", "train.lr=1e-3", "--out", str(out), "--resume", "--quiet"]) == 2
    _one_line_error(capsys, "trained with a different config")
    assert (_digest(out / "checkpoint.safetensors"), _digest(out / "metrics.jsonl")) == before


def test_nothing_to_resume(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", steps=4)
    assert main(["train", "--config", cfg, "--out", str(tmp_path / "empty"), "--resume", "--quiet"]) == 2
    _one_line_error(capsys, "nothing to resume")
    assert not (tmp_path / "empty").exists()


@pytest.mark.parametrize("override, fragment", [
    ("train.options={ema=0.9, warmup_steps=3}", "unknown train.options key(s) warmup_steps"),
    ("train.options={grad_accum=3}", "must be divisible by processes × train.options.grad_accum"),
])
def test_bad_options_fail_before_anything_is_written(tmp_path, capsys, override, fragment):
    cfg = write_config(tmp_path / "c.toml", steps=4)
    assert main(["train", "--config", cfg, "--set", override, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    _one_line_error(capsys, fragment)
    assert not (tmp_path / "o").exists()


def test_exit_code_from_a_real_process(trained):
    cfg, out = trained
    res = run(prime_cmd("train", "--config", cfg, "--out", str(out), "--quiet"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_force_starts_over_and_resume_of_a_finished_run_is_a_no_op(trained):
    cfg, out = trained
    before = _digest(out / "checkpoint.safetensors")
    assert main(["train", "--config", cfg, "--out", str(out), "--resume", "--quiet"]) == 0
    assert _digest(out / "checkpoint.safetensors") == before
    assert main(["train", "--config", cfg, "--out", str(out), "--force", "--quiet"]) == 0
    assert len(open(out / "metrics.jsonl").read().splitlines()) == 2  # log_every 4, 8 steps: a fresh log


def test_prime_run_with_the_torch_trainer_and_ema_weights(tmp_path, capsys):
    cfg = write_config(tmp_path / "c.toml", steps=8, options={"precision": "bf16"})  # bf16 autocast on CPU too
    assert main(["run", "--config", cfg, "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert (tmp_path / "r" / "report.md").exists() and (tmp_path / "r" / "loss.png").exists()
    ema, _, ckpt = load_model(str(tmp_path / "r" / "checkpoint.safetensors"), weights="ema")
    raw, _, _ = load_model(str(tmp_path / "r" / "checkpoint.safetensors"), weights="model")
    assert ckpt.meta["ema_decay"] == 0.9 and ckpt.meta["train_state"]["trainer"] == "torch"
    differs = [n for (n, p), q in zip(ema.named_parameters(), raw.parameters()) if not p.equal(q)]
    assert differs  # the EMA weights are not the raw weights
