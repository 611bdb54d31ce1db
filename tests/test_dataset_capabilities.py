"""A data set implements only what it needs (issue 13): `Dataset` is the data source; decoding/drawing
(`Presentation`), bits per byte (`ByteLengths`) and exact densities (`KnownDensity`) are opt-in."""

from __future__ import annotations

import torch

from prime_core import Dataset, Presentation, hookimpl, presentation
from prime_core.builtin.trainer import SimpleTrainer
from prime_core.runs.config import load_config
from prime_core.runs.evaluate import evaluate_report


class Pairs(Dataset):
    """Only what a data source must have: sizes and splits."""

    name = "pairs"
    num_classes, length = 4, 2

    def split(self, name: str) -> torch.Tensor:
        g = torch.Generator().manual_seed({"train": 0, "valid": 1, "test": 2}[name])
        return torch.randint(0, 4, (64, 2), generator=g)


class Letters(Pairs, Presentation):
    name = "letters"

    def decode_samples(self, tokens):
        return ["".join("abcd"[i] for i in row.tolist()) for row in tokens]


class Plugin:
    @hookimpl
    def register_datasets(self, register):
        register("pairs", Pairs)
        register("letters", Letters)


def test_presentation_is_opt_in():
    tokens = torch.tensor([[0, 3]])
    assert presentation(Pairs()).decode_samples(tokens) == ["0 3"]
    assert presentation(Pairs()).render(tokens, "x.png") is None
    assert presentation(Letters()).decode_samples(tokens) == ["ad"]


def test_a_bare_data_source_trains_and_evaluates(registered, tmp_path):
    reg = registered(Plugin())
    config = load_config(None, ["data.dataset=pairs", "model.width=8", "model.backbone_options={hidden = 16}",
                                "train.steps=3", "train.batch_size=8", "eval.mc_samples=1", "eval.tstep_steps=2"])
    ckpt = SimpleTrainer().fit(config, out_dir=str(tmp_path / "run"), progress=False, registry=reg)
    report = evaluate_report(ckpt, registry=reg)
    assert report["sequences"] == 64 and "data_cross_entropy" not in report
    assert all("bits_per_byte_upper_bound" not in row for row in report["metrics"])
