"""train.options.compile = true: torch.compile of the backbone trains, and the checkpoint keeps the model's names
(loadable by `load_model`), close to the eager run (compiled kernels may reorder float sums)."""

from __future__ import annotations

import pytest
import torch

from prime_core import load_config
from prime_core.runs.build import load_model
from prime_plugin_trainer import TorchTrainer
from trainer_helpers import checkpoint_tensors, max_relative_gap


@pytest.mark.slow
def test_compiled_training_matches_eager(make_config, tmp_path):
    eager = TorchTrainer().fit(load_config(make_config("e.toml", steps=4)), out_dir=str(tmp_path / "e"),
                               progress=False)
    compiled = TorchTrainer().fit(load_config(make_config("c.toml", steps=4, options={"compile": True})),
                                  out_dir=str(tmp_path / "c"), progress=False)
    a, b = checkpoint_tensors(compiled), checkpoint_tensors(eager)
    gap, name = max_relative_gap(a, b)
    assert gap <= 1e-3, (name, gap)
    model, _, _ = load_model(compiled, weights="ema")
    assert all(torch.isfinite(p).all() for p in model.parameters())
