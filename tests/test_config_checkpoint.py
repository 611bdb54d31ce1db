"""Configs (attrs + TOML + overrides) and checkpoints (safetensors + JSON through fsspec)."""

import json
import os

import pytest
import torch

from prime_core import CheckpointError, Config, ConfigError, ModelConfig, load_config, load_model, save_model
from prime_core.runs.checkpoint import read_checkpoint, save_checkpoint
from prime_core.runs.config import parse_override


def test_validators_explain():
    with pytest.raises(ConfigError, match="width=10 must be divisible by model.ell=4"):
        ModelConfig(ell=4, width=10)
    with pytest.raises(ConfigError, match="num_classes must be ≥ 2"):
        ModelConfig(num_classes=1)
    with pytest.raises(ConfigError, match="noise must be one of independent, grouped"):
        ModelConfig(noise="sometimes")
    with pytest.raises(ConfigError, match="unknown key"):
        Config.from_dict({"model": {"elll": 2}})
    with pytest.raises(ConfigError, match="unknown config section"):
        Config.from_dict({"modle": {}})


def test_toml_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[model]\nell = 2\nwidth = 8\n[train]\nsteps = 5\n')
    cfg = load_config(str(path), ["model.ell=4", "train.lr=0.01", "model.head=joint",
                                  "model.backbone_options={hidden = 16}"])
    assert (cfg.model.ell, cfg.model.width, cfg.train.steps, cfg.train.lr) == (4, 8, 5, 0.01)
    assert cfg.model.head == "joint" and cfg.model.backbone_options == {"hidden": 16}
    assert Config.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("model.ell")
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.toml"))


@pytest.mark.parametrize("scheme", ["path", "file", "memory"])
def test_model_round_trip_through_fsspec(tiny_model, registry, tmp_path, scheme):
    model = tiny_model(num_classes=7, length=3, ell=2)
    cfg = Config(model=ModelConfig(num_classes=7, length=3, ell=2, width=8, schedule="cosine",
                                   backbone_options={"hidden": 32, "depth": 1}))
    url = {"path": str(tmp_path / "m.safetensors"), "file": f"file://{tmp_path}/m.safetensors",
           "memory": "memory://ckpts/m.safetensors"}[scheme]
    save_model(url, model, cfg, registry=registry)
    loaded, cfg2, ckpt = load_model(url, registry)
    assert cfg2 == cfg
    assert ckpt.meta["ell"] == 2 and ckpt.meta["base"] == 3 and ckpt.meta["num_classes"] == 7
    assert ckpt.meta["components"]["head"]["distribution"] == "prime-core"
    y = torch.full((2, 3, 2), model.mask_id)
    assert torch.equal(loaded.log_probs(y), model.log_probs(y))
    if scheme == "path":
        assert os.listdir(tmp_path) == ["m.safetensors"]  # the temporary name was renamed away


def test_corrupt_truncated_and_foreign_files(tmp_path):
    url = str(tmp_path / "c.safetensors")
    save_checkpoint(url, {"model/w": torch.ones(3)}, {"config": {}})
    data = open(url, "rb").read()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) - 5])
    (tmp_path / "junk.safetensors").write_bytes(b"\x00garbage" * 10)
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2)}, str(tmp_path / "foreign.safetensors"))
    for name, pattern in [("trunc", "corrupt|truncated"), ("junk", "not a prime checkpoint"),
                          ("foreign", "without prime metadata"), ("missing", "not found")]:
        with pytest.raises(CheckpointError, match=pattern):
            read_checkpoint(str(tmp_path / f"{name}.safetensors"))
    with pytest.raises(CheckpointError, match="no valid config"):
        load_model(url)


def test_checkpoint_that_does_not_match_its_config(tmp_path, tiny_model, registry):
    model = tiny_model(num_classes=7, length=3, ell=2)
    cfg = Config(model=ModelConfig(num_classes=7, length=3, ell=2, width=8,
                                   backbone_options={"hidden": 64, "depth": 1}))  # hidden differs
    url = str(tmp_path / "m.safetensors")
    save_model(url, model, cfg, registry=registry)
    with pytest.raises(CheckpointError, match="does not match"):
        load_model(url, registry)
