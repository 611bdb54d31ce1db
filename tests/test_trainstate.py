"""One training-state layout for every trainer (issue 13): optimizer state keyed by parameter name."""

from __future__ import annotations

import pytest
import torch

from prime_core import read_checkpoint
from prime_core.cli.app import main
from prime_core.runs.trainstate import load_optimizer_tensors, optimizer_tensors

TINY = ["--set", "data.dataset=toy-markov", "--set", "data.options={num_classes = 6, length = 3, num_eval = 16}",
        "--set", "model.width=8", "--set", "model.backbone_options={hidden = 16, depth = 1}",
        "--set", "train.steps=3", "--set", "train.batch_size=8", "--quiet"]


def _step(model, opt):
    opt.zero_grad()
    model(torch.randn(4, 3)).square().sum().backward()
    opt.step()


def test_round_trip_and_index_keyed_files():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Linear(5, 2))
    opt = torch.optim.AdamW(model.parameters())
    _step(model, opt)
    saved = optimizer_tensors(model, opt)
    assert sorted(saved) == sorted(f"{n}/{k}" for n, _ in model.named_parameters()
                                   for k in ("exp_avg", "exp_avg_sq", "step"))
    fresh = torch.optim.AdamW(model.parameters())
    load_optimizer_tensors(model, fresh, saved)
    assert all(torch.equal(opt.state[p]["exp_avg"], fresh.state[p]["exp_avg"]) for p in model.parameters())
    # prime-core ≤ 0.1.0's simple trainer: "optim/<parameter index>/<key>"
    legacy = {f"{i}/{k}": v for (i, p) in enumerate(model.parameters()) for k, v in opt.state[p].items()}
    older = torch.optim.AdamW(model.parameters())
    load_optimizer_tensors(model, older, legacy)
    assert all(torch.equal(opt.state[p]["exp_avg_sq"], older.state[p]["exp_avg_sq"]) for p in model.parameters())


@pytest.mark.parametrize("trainer", ["simple", "torch"])
def test_both_trainers_save_the_same_layout(tmp_path, trainer):
    pytest.importorskip("prime_plugin_trainer") if trainer == "torch" else None
    out = tmp_path / trainer
    assert main(["train", "--out", str(out), *TINY, "--set", f"train.trainer={trainer}"]) == 0
    ckpt = read_checkpoint(str(out / "checkpoint.safetensors"))
    params = {k for k in ckpt.group("model") if not k.endswith(("running_mean", "running_var"))}
    optim = ckpt.group("optim")
    assert optim and {k.rsplit("/", 1)[0] for k in optim} <= params
    assert {k.rsplit("/", 1)[1] for k in optim} == {"exp_avg", "exp_avg_sq", "step"}
    assert ckpt.meta["train_state"]["trainer"] == trainer and ckpt.meta["train_state"]["step"] == 3
