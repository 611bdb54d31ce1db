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


# ------------------------------------------------------------------------------------ static int8 (calibrated)
def _markov_checkpoint(tmp_path, **data):
    """A random MLP checkpoint on the built-in toy-markov data set (C = 27, L = 3): calibration rows exist."""
    from prime_core import Config, DataConfig, save_model

    from .conftest import mlp_config, random_model

    cfg = mlp_config(2)
    cfg = Config(model=cfg.model, data=DataConfig(dataset=data.pop("dataset", "toy-markov"), options=data or {
        "num_classes": 27, "length": 3, "num_train": 200, "num_eval": 16}))
    path = str(tmp_path / "markov.safetensors")
    save_model(path, random_model(cfg), cfg)
    return path


def test_static_int8_export_is_calibrated_and_samples(tmp_path, capsys):
    ckpt = _markov_checkpoint(tmp_path)
    out = tmp_path / "step-static.onnx"
    rc, text = _export(ckpt, out, capsys, "--int8", "--calibration-rows", "24")
    assert rc == 0, text
    assert "weights int8" in text and "pre-processing" not in text
    assert sorted(os.listdir(tmp_path)) == ["markov.safetensors", "step-static.onnx"]
    graph = onnx.load(str(out))
    ops = [n.op_type for n in graph.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops and "DynamicQuantizeLinear" not in ops
    step = json.loads({p.key: p.value for p in graph.metadata_props}["prime.step"])
    assert step["weights_dtype"] == "int8" and "static" in step["quantization"] and "24 calibration rows" in \
        step["quantization"]
    rc = main(["sample", ckpt, "--runtime", "onnxruntime", "--step-model", str(out), "-n", "5", "--steps", "4",
               "--json", "--quiet"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(report["tokens"]) == 5
    assert all(0 <= t < 27 for row in report["tokens"] for t in row)


def test_calibration_feeds_follow_the_forward_process(tmp_path):
    """Rows from the data set's training split; each sub-token masked with probability 1 − α_t (pooled over 4,096
    rows: within 5 standard errors); α_s ≥ α_t; the same seed gives the same feeds."""
    import torch

    from prime_core import load_model

    from export.calibration import calibration_rows, step_feeds

    model, cfg, ckpt = load_model(_markov_checkpoint(tmp_path, num_classes=27, length=3, num_train=4096,
                                                     num_eval=16))
    rows = calibration_rows(model, cfg, ckpt.meta, 4096)
    assert rows.shape == (4096, 3) and int(rows.max()) < 27
    feeds = step_feeds(model, cfg, rows)
    masked = torch.cat([(f["y"] == model.mask_id).double().mean((1, 2)) for f in feeds])
    expected = torch.cat([1 - f["alpha_t"] for f in feeds])
    n = masked.numel() * 3 * model.ell
    se = (expected * (1 - expected)).mean().sqrt() / n ** 0.5
    assert abs(float(masked.mean() - expected.mean())) < 5 * float(se) + 1e-3
    assert all(bool((f["alpha_s"] >= f["alpha_t"]).all()) for f in feeds)
    again = step_feeds(model, cfg, calibration_rows(model, cfg, ckpt.meta, 4096))
    assert all(torch.equal(a[k], b[k]) for a, b in zip(feeds, again) for k in a)


def test_static_int8_bad_flags_are_one_line_and_write_nothing(tmp_path, capsys):
    ckpt = _markov_checkpoint(tmp_path)
    out = tmp_path / "step.onnx"
    cases = [(["--int8", "--calibration-rows", "0"], "--calibration-rows"),
             (["--calibration-rows", "8"], "add --int8"),
             (["--int8", "--data-option", "source=x"], "add --int8 --calibration-rows"),
             (["--int8", "--calibration-rows", "8", "--data-option", "source"], "KEY=VALUE"),
             (["--int8", "--calibration-rows", "8", "--data-option", "bogus=1"], "locations")]
    for extra, needle in cases:
        try:
            rc, text = _export(ckpt, out, capsys, *extra)
        except SystemExit as exc:  # a value the parser refuses exits there (one line, code 2)
            rc, text = exc.code, capsys.readouterr().err
        assert rc == 2 and len(text.strip().splitlines()) == 1 and needle in text, (extra, text)
        assert os.listdir(tmp_path) == ["markov.safetensors"]


def test_static_int8_without_its_data_is_one_line(tmp_path, capsys):
    """The checkpoint's data set read a file the checkpoint does not carry: static int8 says which flag to pass."""
    import pytest

    from prime_core import get_registry

    if "text" not in get_registry().names("dataset"):
        pytest.skip("prime-plugin-text not installed")
    ckpt = _markov_checkpoint(tmp_path, dataset="text", source=str(tmp_path / "corpus.txt"))
    rc, text = _export(ckpt, tmp_path / "step.onnx", capsys, "--int8", "--calibration-rows", "8")
    assert rc == 2 and len(text.strip().splitlines()) == 1 and "--data-option source=PATH" in text, text
    assert os.listdir(tmp_path) == ["markov.safetensors"]
