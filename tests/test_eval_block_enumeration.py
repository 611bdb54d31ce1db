"""`prime eval` of a block model enumerates its exact NLL only where that is cheap (issue 19, item 5).

The enumeration costs K = L/B blocks × 2^{units} mask states × a forward over L positions; on the main job's
B = 4, ℓ = 2 model (K = 16, 8 units per block, L = 64) it ran for hours on a CPU, so `prime eval` never finished.
"""

from __future__ import annotations

import json

from prime_core.runs.evaluate import EXACT_WORK, enumerable_blocks


def test_enumeration_budget_is_a_plain_models_largest():
    assert EXACT_WORK == 2 ** 8 * 8
    assert enumerable_blocks(4, 4, 2)  # the tiny block model of the plugin's tests: 2 · 16 · 4 = 128
    assert enumerable_blocks(8, 8, 8)  # one block of 8 units is a plain model's largest enumeration
    assert not enumerable_blocks(64, 8, 4)  # the main job with B = 4, ℓ = 2: 16 · 256 · 64
    assert not enumerable_blocks(64, 4, 4)  # B = 4, ℓ = 1: 16 · 16 · 64


def test_eval_of_a_long_block_model_prints_its_bounds_without_enumerating(tmp_path, capsys):
    from prime_core.cli import main

    out = tmp_path / "run"
    tiny = ["--set", "data.dataset=toy-markov", "--set", "data.options={num_classes = 6, length = 64, num_eval = 8}",
            "--set", "model.width=8", "--set", "model.backbone=dit", "--set", "model.ell=2",
            "--set", "model.block_size=4", "--set", 'model.backbone_options={preset = "tiny", cond_dim = 8}',
            "--set", "train.batch_size=4", "--set", "train.warmup=0", "--set", "train.steps=1",
            "--set", "train.checkpoint_every=1", "--set", "eval.mc_samples=2", "--set", "eval.tstep_steps=4",
            "--set", "eval.max_sequences=4", "--set", "sample.steps=2"]
    assert main(["train", "--out", str(out), "--quiet", *tiny]) == 0
    capsys.readouterr()
    assert main(["eval", str(out / "checkpoint.safetensors"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in report["metrics"]] == ["block-nelbo", "block-tstep-nelbo", "block-joint-loss"]
    assert all(row["is_bound"] for row in report["metrics"][:2])
    assert "exact_nll" not in report  # 16 blocks × 2^8 states × 64 positions: not enumerated
