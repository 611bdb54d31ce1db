"""Issue 21 item 1: `prime sample` / `prime run` pick the batch from a memory budget (prime_core.sampling.batch_budget).

All rows run at once when they fit (one network call per step for every row), a small budget splits them, and
the tokens are the same for every batch — default, --memory-budget, --batch-size — since rows are keyed.
"""

from __future__ import annotations

import json

import pytest

from prime_core.sampling.batch_budget import batch_rows, bytes_per_row, parse_budget
from prime_core.api import load_model
from prime_core.cli import main

from test_bad_inputs import TINY


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(out), "--quiet", *TINY]) == 0
    return str(out / "checkpoint.safetensors")


def _sample(capsys, *args) -> dict:
    rc = main(["sample", *args, "--json", "--quiet", "--seed", "5", "--steps", "8"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads(captured.out)


@pytest.mark.parametrize(("text", "size"), [("512M", 512 * 2**20), ("2GiB", 2 * 2**30), ("1.5G", 3 * 2**29),
                                            ("800MB", 800 * 10**6), ("64", 64 * 2**20), (" 1 mib ", 2**20)])
def test_sizes_parse(text, size):
    assert parse_budget(text) == size


def test_all_rows_at_once_when_they_fit_and_one_row_at_least(ckpt):
    model = load_model(ckpt)[0]
    per_row = bytes_per_row(model)
    # at least the draw over C classes at each of the L positions, in float32 and float64
    assert per_row >= model.length * model.num_classes * 28
    assert batch_rows(model, 100, 100 * per_row) == 100
    assert batch_rows(model, 100, 10 * per_row + per_row // 2) == 10
    assert batch_rows(model, 100, 1) == 1


def test_default_budget_runs_every_row_in_one_batch(ckpt, capsys):
    """16 tiny rows fit 1024 MiB: 8 steps are at most 8 network calls, not 8 per batch of the old default 16…"""
    one = _sample(capsys, ckpt, "-n", "40")
    chunked = _sample(capsys, ckpt, "-n", "40", "--batch-size", "3")
    assert one["forward_calls"] <= 8 < chunked["forward_calls"]
    assert one["tokens"] == chunked["tokens"]


def test_small_budget_splits_rows_with_the_same_tokens(ckpt, capsys, monkeypatch):
    """A budget of 1 MiB on a model whose row needs ~1/4 MiB (patched) gives batches of 4: the same tokens."""
    import prime_core.sampling.batch_budget as bb

    whole = _sample(capsys, ckpt, "-n", "10")
    monkeypatch.setattr(bb, "bytes_per_row", lambda model: 2**18)
    split = _sample(capsys, ckpt, "-n", "10", "--memory-budget", "1M")
    assert split["tokens"] == whole["tokens"]
    assert split["forward_calls"] > whole["forward_calls"]


@pytest.mark.parametrize("value", ["lots", "0", "0.5M", "12 parsecs", "-3G", "2PiB"])
def test_bad_budget_is_one_line_exit_2(ckpt, capsys, tmp_path, value):
    out = tmp_path / "o"
    rc = main(["sample", ckpt, f"--memory-budget={value}", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and "--memory-budget" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing half-written


def test_config_key_sets_the_run_budget(ckpt, capsys):
    from prime_core.api import Config
    from prime_core.errors import ConfigError

    assert Config().sample.memory_budget_mib == 1024
    with pytest.raises((ConfigError, ValueError, TypeError)):
        Config.from_dict({"sample": {"memory_budget_mib": 0}})
