"""TensorRT: without the package (or a GPU) a clean exit 2 that writes nothing; the engine build sequence runs
against a stand-in ``tensorrt`` module with TensorRT's Python API (TensorRT cannot be installed here)."""

from __future__ import annotations

import json
import os
import sys
import types

import pytest
import torch

from export import engine as trt_mod
from export.trt import main as trt_main
from prime_core import PrimeError

from .conftest import mlp_config


def test_missing_tensorrt_exits_2_and_writes_nothing(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import fails even where TensorRT exists
    ckpt, _ = checkpoint("mlp-l2", mlp_config(2))
    out = tmp_path / "step.engine"
    assert trt_main([ckpt, "-o", str(out), "--fp16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("export.trt: error: TensorRT is not available")
    assert os.listdir(tmp_path) == []


def test_no_gpu_exits_2(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", _standin([]))
    monkeypatch.setattr(trt_mod, "cuda_available", lambda: False)
    ckpt, _ = checkpoint("mlp-l2", mlp_config(2))
    assert trt_main([ckpt, "-o", str(tmp_path / "e.engine")]) == 2
    assert "NVIDIA GPU" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def _standin(log: list, parse_ok: bool = True):
    """A module with the parts of TensorRT's API that `build_engine` uses, recording every call."""
    trt = types.ModuleType("tensorrt")

    class Logger:
        WARNING = 2

        def __init__(self, level):
            log.append(("Logger", level))

    class NetworkDefinitionCreationFlag:
        STRONGLY_TYPED = 1

    class Profile:
        def set_shape(self, name, lo, opt, hi):
            log.append(("set_shape", name, lo, opt, hi))

    class Config:
        def add_optimization_profile(self, profile):
            log.append(("add_optimization_profile",))

    class Builder:
        def __init__(self, logger):
            log.append(("Builder",))

        def create_network(self, flags):
            log.append(("create_network", flags))
            return object()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            log.append(("build_serialized_network",))
            return bytearray(b"ENGINE")

    class OnnxParser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse_from_file(self, path):
            log.append(("parse_from_file", os.path.basename(path)))
            return parse_ok

        def get_error(self, i):
            return "In node 7 (TopK): k exceeds 3840"

    trt.Logger, trt.Builder, trt.OnnxParser = Logger, Builder, OnnxParser
    trt.NetworkDefinitionCreationFlag = NetworkDefinitionCreationFlag
    return trt


def test_engine_build_sequence_with_standin(exported, tmp_path):
    onnx_path, model, meta = exported("mlp-l2-f32", mlp_config(2), noise_dtype=torch.float32,
                                      real_dtype=torch.float32)
    log = []
    engine = tmp_path / "step.engine"
    profile = trt_mod.build_engine(_standin(log), onnx_path, str(engine), min_batch=1, opt_batch=4, max_batch=16)
    names = [entry[0] for entry in log]
    assert names[:4] == ["Logger", "Builder", "create_network", "parse_from_file"]
    assert names[-2:] == ["add_optimization_profile", "build_serialized_network"]
    assert ("create_network", 1 << 1) in log  # strongly typed network
    shapes = {e[1]: e[2:] for e in log if e[0] == "set_shape"}
    assert set(shapes) == set(meta["step"]["inputs"]) == set(profile)
    assert shapes["u_token"] == ((1,), (12,), (48,))  # one uniform per revealing position, N ≤ batch·L
    assert shapes["y"] == ((1, 3, 2), (4, 3, 2), (16, 3, 2))
    assert shapes["t"] == ((1,), (4,), (16,))
    assert engine.read_bytes() == b"ENGINE"
    assert json.loads((tmp_path / "step.engine.json").read_text()) == meta


def test_engine_build_parse_error_is_one_line(exported, tmp_path):
    onnx_path, _, _ = exported("mlp-l2-f32", mlp_config(2), noise_dtype=torch.float32,
                               real_dtype=torch.float32)
    with pytest.raises(PrimeError, match="cannot parse the step graph: In node 7"):
        trt_mod.build_engine(_standin([], parse_ok=False), onnx_path, str(tmp_path / "e.engine"))
    assert os.listdir(tmp_path) == []


def test_bad_profile_is_rejected():
    with pytest.raises(PrimeError, match="min-batch"):
        trt_mod.profile_shapes({"t": [None]}, 4, 2, 8, length=3)
