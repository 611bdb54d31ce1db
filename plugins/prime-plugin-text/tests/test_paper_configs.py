"""The paper's training setups shipped as configs (owt-*, lm1b-*): listed by `prime config list`, stating the
official code's numbers, and each one running end to end on CPU with tiny overrides (2 steps, D = 48, 2 blocks,
L = 32, bytes tokenizer, a small local text file). D = 48 rather than 64: it is divisible by every ℓ shipped
(1, 2, 3, 4, 6, 8), as D must be (DESIGN §2.7)."""

from __future__ import annotations

import json
import os

import pytest

from prime_core import read_checkpoint
from prime_core.api import load_config
from prime_core.cli.app import main
from prime_core.plugin.shipped_configs import shipped_configs
from prime_plugin_text.plugin import PAPER_CONFIGS

ELL = {"mdlm": 1, "ar": 1, "prime-l2": 2, "prime-l3": 3, "prime-l4": 4, "prime-l6": 6, "prime-l8": 8}


def _kind(name: str) -> str:
    return name.split("-", 1)[1]


def test_all_fourteen_are_shipped_with_a_description():
    assert len(PAPER_CONFIGS) == 14
    configs = shipped_configs()
    for name in PAPER_CONFIGS:
        assert configs[name].distribution == "prime-plugin-text"
        assert "DiT 12×768" in configs[name].description


def test_the_checkouts_configs_folder_links_to_them():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "..", "configs")
    if not os.path.isdir(root):
        pytest.skip("not run from a checkout (tests copied beside installed wheels)")
    configs = shipped_configs()
    for name in PAPER_CONFIGS:  # the repository's configs/ links to the shipped file, as for main.toml
        link = os.path.join(root, f"{name}.toml")
        assert os.path.islink(link) and open(link, encoding="utf-8").read() == configs[name].read_text()


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_config_states_the_papers_numbers(name):
    c = load_config(name)
    m, t, o = c.model, c.train, c.train.options
    assert m.ell == ELL[_kind(name)] and m.width == 768 and m.schedule == "loglinear" and not m.time_conditioned
    assert m.backbone == ("dit-ar" if _kind(name) == "ar" else "dit")
    assert m.backbone_options == {"preset": "base", "heads": 12, "cond_dim": 128, "dropout": 0.1}
    assert c.data.options["length"] == (1024 if name.startswith("owt") else 128)
    assert "prepared" in c.data.options
    assert (t.trainer, t.steps, t.batch_size, t.lr, t.warmup, t.weight_decay, t.grad_clip, t.eps) == \
        ("torch", 1_000_000, 512, 3e-4, 2500, 0.0, 1.0, 1e-3)
    assert t.loss == {"ar": "ar-nll", "mdlm": "nelbo"}.get(_kind(name), "joint")
    assert (t.eval_every, t.checkpoint_every, t.keep) == (10_000, 5000, "both")
    assert o["ema"] == 0.9999 and o["precision"] == "bf16" and o["schedule"] == "constant"
    assert (c.sample.steps, c.sample.draw_dtype) == (512, "float64")


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_config_trains_end_to_end_with_tiny_overrides(name, corpus, cache, tmp_path):
    out = tmp_path / "run"
    opts = f'data.options={{ source = "{corpus}", tokenizer = "bytes", length = 32, cache_dir = "{cache}" }}'
    sets = [opts, "model.width=48", 'model.backbone_options={ preset = "tiny", depth = 2, heads = 2, cond_dim = 16 }',
            "train.steps=2", "train.batch_size=8", "train.log_every=1", "eval.batch_size=16"]
    args = ["train", "--config", name, "--out", str(out), "--quiet"] + [a for s in sets for a in ("--set", s)]
    assert main(args) == 0
    rows = [json.loads(line) for line in open(out / "metrics.jsonl", encoding="utf-8")]
    valid = [r for r in rows if "valid_metric" in r]
    bound = "ar-nll" if _kind(name) == "ar" else "nelbo"
    assert [r["step"] for r in valid] == [2] and valid[0]["valid_metric"] == bound  # the last step validates
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
    ckpt = read_checkpoint(str(out / "checkpoint.safetensors"))  # keep = "both"
    assert ckpt.meta["ema_decay"] == 0.9999 and ckpt.group("ema")
    assert read_checkpoint(str(out / "best.safetensors")).meta["train_state"]["step"] == 2
