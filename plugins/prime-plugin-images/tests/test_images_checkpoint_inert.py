"""Issue 14: an image checkpoint's folder (image-folder ``path``, fashion-mnist ``root``) is never taken from its
metadata; `--data-option` gives it, and a missing one is a one-line error naming what to pass."""

import json

import numpy as np
import pytest

from prime_core import Config, ConfigError, DataConfig, ModelConfig, build_model, get_registry, save_model
from prime_core.runs.build import dataset_for_checkpoint
from prime_core.cli.app import main

MODEL = ModelConfig(num_classes=4, length=16, ell=2, width=8, backbone_options={"hidden": 16, "depth": 1})


def _folder(path, value):
    path.mkdir()
    np.save(path / "a.npy", np.full((3, 4, 4), value, dtype=np.uint8))
    return str(path)


def _config(**options):
    return Config(data=DataConfig(dataset="image-folder", options={"levels": 4, "valid_fraction": 0.0, **options}),
                  model=MODEL)


def test_image_folder_path_comes_from_the_user(tmp_path):
    stored, mine = _folder(tmp_path / "stored", 255), _folder(tmp_path / "mine", 0)
    cfg = _config(path=stored)
    with pytest.raises(ConfigError, match="built from data.options.path, a location, .*pass --data-option path=PATH"):
        dataset_for_checkpoint(cfg, {}, need_data=False)
    ds = dataset_for_checkpoint(cfg, {}, locations={"path": mine})
    assert ds.path == mine and int(ds.split("train").max()) == 0  # the user's images, not the stored ones


def test_fashion_mnist_default_root_is_kept_and_other_roots_are_not(tmp_path):
    reg = get_registry()
    default = Config(data=DataConfig(dataset="fashion-mnist", options={"root": "/usr/share/datasets/fashion-mnist"}),
                     model=ModelConfig(num_classes=256, length=784))
    assert dataset_for_checkpoint(default, {}, registry=reg).root == "/usr/share/datasets/fashion-mnist"
    moved = Config(data=DataConfig(dataset="fashion-mnist", options={"root": "https://example.invalid/fm"}),
                   model=ModelConfig(num_classes=256, length=784))
    with pytest.raises(ConfigError, match="pass --data-option root=PATH"):
        dataset_for_checkpoint(moved, {}, registry=reg)
    assert dataset_for_checkpoint(moved, {}, need_data=False, registry=reg).root != "https://example.invalid/fm"


def test_prime_sample_on_a_foreign_image_folder_checkpoint(tmp_path, capsys):
    cfg = _config(path=_folder(tmp_path / "stored", 255))
    ckpt = save_model(str(tmp_path / "c.safetensors"), build_model(cfg), cfg)
    assert main(["sample", ckpt, "-n", "2", "--steps", "2", "--quiet", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pass --data-option path=PATH" in err[0] and not (tmp_path / "o").exists()
    mine = _folder(tmp_path / "mine", 0)
    assert main(["sample", ckpt, "-n", "2", "--steps", "2", "--quiet", "--out", str(tmp_path / "o"),
                 "--data-option", f"path={mine}"]) == 0
    assert len(json.load(open(tmp_path / "o" / "samples.json"))["tokens"]) == 2
