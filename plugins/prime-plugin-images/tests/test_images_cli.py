"""`prime sample` on an image checkpoint writes the sample grid and the trajectory PNG; options reach the sampler."""

import json

import numpy as np
import pytest
from PIL import Image

from prime_core.cli.app import main


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rc = main(["train", "--quiet", "--out", str(out), "--set", "data.dataset=digits", "--set", "data.options={levels=4}",
               "--set", "model.backbone=uvit-tiny", "--set", "model.width=16", "--set", "model.ell=2",
               "--set", "model.backbone_options={patch_size=2, embed_dim=16, heads=2}",
               "--set", "train.steps=3", "--set", "train.batch_size=8", "--set", "sample.sampler=image"])
    assert rc == 0
    return out / "checkpoint.safetensors"


def test_prime_sample_writes_grid_and_trajectory(checkpoint, tmp_path, capsys):
    rc = main(["sample", str(checkpoint), "-n", "4", "--steps", "6", "--quiet", "--out", str(tmp_path),
               "--trajectory", "--option", "temperature_schedule=[0.5, 1.0, 0.6]", "--option", "warp=1.5",
               "--option", "strategy=cap", "--option", "eta=0.2"])
    assert rc == 0
    grid = np.asarray(Image.open(tmp_path / "samples.png"))
    traj = np.asarray(Image.open(tmp_path / "trajectory.png").convert("RGB"))
    assert grid.ndim == 3 and traj.shape[1] > traj.shape[0]  # frames laid out left to right
    blue = (traj[..., 2] > 150) & (traj[..., 0] < 80)  # fully masked pixels in the first frames
    assert blue.any()
    tokens = json.load(open(tmp_path / "samples.json"))["tokens"]
    assert len(tokens) == 4 and max(max(r) for r in tokens) <= 3


def test_bad_sampler_option_is_one_line(checkpoint, capsys):
    rc = main(["sample", str(checkpoint), "-n", "2", "--steps", "2", "--quiet", "--option", "warp=-1"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "warp" in err


def test_prime_images_fd_cli(checkpoint, tmp_path, capsys):
    from prime_plugin_images.cli import main as images_main

    assert main(["sample", str(checkpoint), "-n", "8", "--steps", "4", "--quiet", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    cfg = ["--config", "images-digits", "--set", "data.options={levels=4}"]  # shipped with this plugin
    # FD-FMNIST-style score with a quickly built 8×8 feature network
    from prime_plugin_images.features import FMNISTClassifier, save_classifier
    feat = save_classifier(str(tmp_path / "f.safetensors"), FMNISTClassifier(1, 8, 8), {})
    rc = images_main(["fd", str(tmp_path / "samples.json"), *cfg, "--features", feat, "--num-real", "50",
                      "--device", "cpu"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["metric"] == "FD-FMNIST" and out["value"] >= 0 and out["generated"] == 8
    rc = images_main(["fd", str(tmp_path / "samples.json"), *cfg, "--features", feat, "--num-real", "50"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["value"] == pytest.approx(out["value"], rel=1e-6)
    for spec in ["bogus"] + ([] if __import__("torch").cuda.is_available() else ["cuda"]):
        with pytest.raises(SystemExit) as exc:
            images_main(["fd", str(tmp_path / "samples.json"), *cfg, "--device", spec])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and "argument --device:" in err
    for bad in (["--features", str(tmp_path / "samples.json")], ["--inception", str(tmp_path / "samples.json")]):
        rc = images_main(["fd", str(tmp_path / "samples.json"), *cfg, *bad])
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1, err


def test_train_classifier_on_a_device_returns_a_cpu_network():
    import torch

    from prime_plugin_images.features import accuracy, train_classifier

    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=g)
    y = (x.float().mean((1, 2, 3)) > 127.5).long()
    logs = []
    net = train_classifier(x, y, epochs=2, batch_size=16, device="cpu", log=logs.append)
    assert next(net.parameters()).device.type == "cpu" and len(logs) == 2
    assert 0.0 <= accuracy(net, x, y) <= 1.0
    if torch.cuda.is_available():  # same initial weights and batch order: close results on the GPU
        on_gpu = train_classifier(x, y, epochs=2, batch_size=16, device="cuda", log=lambda _: None)
        assert accuracy(on_gpu.cuda(), x, y) == pytest.approx(accuracy(net, x, y), abs=0.1)
