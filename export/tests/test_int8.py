"""Issue 21 item 6: `prime export onnx CKPT -o OUT --int8` and `prime sample --runtime onnxruntime --step-model OUT`."""

from __future__ import annotations

import json
import os

import onnx

from prime_core.cli import main

from .test_export_onnx import CASES


def _export(ckpt, out, capsys, *extra) -> tuple[int, str]:
    rc = main(["export", "onnx", ckpt, "-o", str(out), "--batch", "3", *extra])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def test_int8_export_has_integer_matmuls_and_samples_valid_tokens(checkpoint, tmp_path, capsys):
    ckpt, model = checkpoint("mlp-l2", CASES["mlp-l2"][0])
    out = tmp_path / "step-int8.onnx"
    rc, text = _export(ckpt, out, capsys, "--int8")
    assert rc == 0, text
    assert "weights int8" in text and "onnxruntime vs torch, batch 3" in text
    assert "pre-processing" not in text  # onnxruntime's own advice is not shown
    assert os.listdir(tmp_path) == ["step-int8.onnx"]  # the fp32 graph it came from is gone
    graph = onnx.load(str(out))
    ops = {n.op_type for n in graph.graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops and "MatMul" not in ops
    step = json.loads({p.key: p.value for p in graph.metadata_props}["prime.step"])
    assert step["weights_dtype"] == "int8" and "dynamic" in step["quantization"]
    rc = main(["sample", ckpt, "--runtime", "onnxruntime", "--step-model", str(out), "-n", "6", "--steps", "4",
               "--json", "--quiet"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0
    tokens = report["tokens"]
    assert len(tokens) == 6 and all(0 <= t < model.num_classes for row in tokens for t in row)


def test_int8_export_refuses_an_existing_output_and_leaves_it(checkpoint, tmp_path, capsys):
    ckpt, _ = checkpoint("mlp-l2", CASES["mlp-l2"][0])
    out = tmp_path / "step.onnx"
    out.write_text("keep me")
    rc, text = _export(ckpt, out, capsys, "--int8")
    assert rc == 2 and len(text.strip().splitlines()) == 1 and "--force" in text
    assert out.read_text() == "keep me" and os.listdir(tmp_path) == ["step.onnx"]
