"""Bad input to the exporters: one line on stderr, exit code 2, nothing written."""

from __future__ import annotations

import os

import pytest
import torch

from export.graph import export_step
from export.onnx import main as onnx_main
from prime_core import Backbone, PrimeError
from prime_core.diffusion.heads import CarryOverHead
from prime_core.diffusion.model import PrimeModel
from prime_core.diffusion.schedules import LogLinearSchedule
from prime_core.diffusion.subtokens import BaseBMap
from prime_core.interfaces import BackboneSpec

from .conftest import mlp_config


def _one_error_line(capsys, prog="export.onnx"):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"{prog}: error:")
    return err


def test_missing_checkpoint(tmp_path, capsys):
    out = tmp_path / "s.onnx"
    assert onnx_main([str(tmp_path / "nope.safetensors"), "-o", str(out)]) == 2
    assert "not found" in _one_error_line(capsys)
    assert not out.exists()


def test_corrupt_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    out = tmp_path / "s.onnx"
    assert onnx_main([str(bad), "-o", str(out)]) == 2
    assert "not a prime checkpoint" in _one_error_line(capsys)
    assert os.listdir(tmp_path) == ["bad.safetensors"]


def test_success_exits_0(checkpoint, tmp_path, capsys):
    """The exporter returns the path it wrote; the command's exit code is still 0 (not int(path))."""
    ckpt, _ = checkpoint("mlp-l2", mlp_config(2))
    out = tmp_path / "s.onnx"
    assert onnx_main([ckpt, "-o", str(out)]) == 0
    assert out.exists() and "error" not in capsys.readouterr().err


def test_missing_onnx_names_the_extra(checkpoint, tmp_path, capsys, monkeypatch):
    import sys

    ckpt, _ = checkpoint("mlp-l2", mlp_config(2))
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx → ImportError
    assert onnx_main([ckpt, "-o", str(tmp_path / "s.onnx")]) == 2
    assert "pip install 'prime-export[onnx]'" in _one_error_line(capsys)


def test_existing_output_needs_force(checkpoint, tmp_path, capsys):
    ckpt, _ = checkpoint("mlp-l2", mlp_config(2))
    out = tmp_path / "s.onnx"
    out.write_bytes(b"keep me")
    assert onnx_main([ckpt, "-o", str(out)]) == 2
    assert "--force" in _one_error_line(capsys)
    assert out.read_bytes() == b"keep me"


@pytest.mark.parametrize("opset", [11, 17, 99])
def test_opset_out_of_range(checkpoint, tmp_path, capsys, opset):
    ckpt, _ = checkpoint("mlp-l2", mlp_config(2))
    out = tmp_path / "s.onnx"
    assert onnx_main([ckpt, "-o", str(out), "--opset", str(opset)]) == 2
    assert f"opset {opset}" in _one_error_line(capsys)
    assert not out.exists()


class _DataDependent(Backbone):
    """Branches in Python on a tensor value: not traceable."""

    def __init__(self, spec):
        super().__init__(spec)
        self.lin = torch.nn.Linear(spec.ell, spec.out_dim)

    def forward(self, y, t=None):
        h = self.lin(y.float())
        if h.sum() > 0:
            return h
        return -h


class _NoOnnxOp(_DataDependent):
    """Uses an operator without an ONNX translation."""

    def forward(self, y, t=None):
        h = self.lin(y.float())
        return h + torch.linalg.eigvals(torch.ones(2, 2) + h.sum()).real.sum()


def _model(backbone_cls):
    smap = BaseBMap(9, 2)
    head = CarryOverHead()
    spec = BackboneSpec(out_dim=9, base=smap.base, ell=2, length=3, width=4, num_classes=9)
    return PrimeModel(smap, backbone_cls(spec), head, LogLinearSchedule())


@pytest.mark.parametrize("cls,expected", [(_DataDependent, "data-dependent"), (_NoOnnxOp, "aten.linalg_eig")])
def test_untraceable_backbone_names_the_culprit(tmp_path, cls, expected):
    out = tmp_path / "s.onnx"
    with pytest.raises(PrimeError) as info:
        export_step(_model(cls), mlp_config(2), str(out), backbone_name="bad")
    msg = str(info.value)
    assert "cannot be traced" in msg and expected in msg and "\n" not in msg
    assert os.listdir(tmp_path) == []


def test_prime_export_trt_is_the_tensorrt_exporter(tmp_path, capsys):
    """`prime export trt` (alias of `prime export tensorrt`) reaches the TensorRT exporter: without tensorrt it is
    one line, exit 2, nothing written."""
    from prime_core.cli.app import main

    out = tmp_path / "step.engine"
    assert main(["export", "trt", str(tmp_path / "missing.safetensors"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("TensorRT" in err[0] or "checkpoint" in err[0]) and not out.exists()
