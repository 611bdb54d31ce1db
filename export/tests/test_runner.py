"""The sampler loop on ONNX Runtime gives the eager sampler's tokens for the same seed (ℓ = 1 and ℓ > 1, with and
without nucleus, cached and uncached, grouped noise, float32 graphs with the reveal decision fed in)."""

from __future__ import annotations

import json

import pytest
import torch

from export.runner import RuntimeSampler
from prime_core import AncestralSampler
from prime_core.cli.app import main as prime_main

from .conftest import mlp_config
from .test_export_onnx import CASES


def _eager(model, **kw):
    return AncestralSampler().sample(model, **kw)


def _assert_same(a, b):
    assert torch.equal(a.tokens, b.tokens)
    assert torch.equal(a.nfe, b.nfe) and torch.equal(a.idle_steps, b.idle_steps)
    assert a.forward_calls == b.forward_calls


@pytest.mark.parametrize("name", ["mlp-l1", "mlp-l2", "mlp-l3-grouped"])
@pytest.mark.parametrize("top_p,temperature", [(1.0, 1.0), (0.8, 0.7)])
def test_identical_tokens(exported, name, top_p, temperature):
    path, model, _ = exported(name, *CASES[name])
    kw = dict(num_samples=6, steps=12, seed=3, top_p=top_p, temperature=temperature, draw_dtype=torch.float64)
    _assert_same(_eager(model, **kw), RuntimeSampler.from_onnx(path).sample(model, **kw))


def test_identical_tokens_uncached_chunked_constrained_and_from_metadata(exported):
    path, model, _ = exported("mlp-l2", *CASES["mlp-l2"])
    fixed = torch.tensor([-1, 5, -1])
    kw = dict(num_samples=5, steps=9, seed=1, top_p=0.9, temperature=lambda t: 0.5 + t, batch_size=2,
              fixed_tokens=fixed, draw_dtype=torch.float64)
    runner = RuntimeSampler.from_onnx(path)
    for cache in (True, False):
        eager = _eager(model, cache=cache, **kw)
        _assert_same(eager, runner.sample(model, cache=cache, **kw))
        assert (eager.tokens[:, 1] == 5).all()
    # the graph's metadata alone rebuilds f, the schedule and the sizes
    _assert_same(_eager(model, **kw), runner.sample(None, **kw))


def test_float32_graph_with_reveal_decision(exported):
    """A TensorRT-style graph (no float64: α, reveal and Gumbel uniforms in float32) still matches exactly."""
    path, model, meta = exported("mlp-l2-f32", mlp_config(2), noise_dtype=torch.float32,
                                 real_dtype=torch.float32)
    assert meta["step"]["real_dtype"] == "float32"
    kw = dict(num_samples=6, steps=10, seed=4, top_p=0.85, draw_dtype=torch.float32)
    _assert_same(_eager(model, **kw), RuntimeSampler.from_onnx(path).sample(model, **kw))


def test_draw_dtype_must_match_the_graph(exported):
    from prime_core.errors import PrimeError

    path, model, _ = exported("mlp-l2", *CASES["mlp-l2"])
    with pytest.raises(PrimeError, match="draws tokens in float64"):
        RuntimeSampler.from_onnx(path).sample(model, num_samples=1, steps=2, draw_dtype=torch.float32)


@pytest.mark.parametrize("ell,top_p", [(1, "1.0"), (2, "0.8")])
def test_prime_sample_runtime_onnxruntime(checkpoint, exported, capsys, ell, top_p):
    name = f"mlp-l{ell}"
    ckpt, _ = checkpoint(name, CASES[name][0])
    step_path, _, _ = exported(name, *CASES[name])
    common = [ckpt, "-n", "4", "--steps", "8", "--seed", "7", "--top-p", top_p, "--json", "--quiet"]
    outs = []
    for extra in ([], ["--runtime", "onnxruntime", "--step-model", step_path]):
        assert prime_main(["sample", *common, *extra]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[0] == outs[1]


def test_prime_sample_runtime_exports_on_the_fly(checkpoint, capsys):
    ckpt, _ = checkpoint("mlp-l1", CASES["mlp-l1"][0])
    common = [ckpt, "-n", "3", "--steps", "6", "--json", "--quiet"]
    assert prime_main(["sample", *common]) == 0
    eager = json.loads(capsys.readouterr().out)
    assert prime_main(["sample", *common, "--runtime", "onnxruntime"]) == 0
    assert json.loads(capsys.readouterr().out) == eager


def test_prime_sample_runtime_tensorrt_missing(checkpoint, capsys):
    ckpt, _ = checkpoint("mlp-l1", CASES["mlp-l1"][0])
    assert prime_main(["sample", ckpt, "-n", "2", "--runtime", "tensorrt", "--step-model", "x.engine"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "TensorRT" in err


def test_prime_export_onnx_is_the_registered_exporter_and_drives_prime_sample(checkpoint, tmp_path, capsys):
    """`prime export onnx` (prime-export's register_commands) writes the same step python -m export.onnx does;
    `prime sample --runtime onnxruntime` (a registered runtime) samples with it, tokens identical to eager."""
    ckpt, _ = checkpoint("mlp-l2", CASES["mlp-l2"][0])
    step = tmp_path / "step.onnx"
    assert prime_main(["export", "onnx", ckpt, "-o", str(step), "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "onnx.checker: ok" in out and "sampled ids identical" in out and step.exists()
    assert prime_main(["export", "onnx", ckpt, "-o", str(step)]) == 2  # exists, no --force: one line
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    common = [ckpt, "-n", "3", "--steps", "5", "--json", "--quiet"]
    assert prime_main(["sample", *common]) == 0
    eager = json.loads(capsys.readouterr().out)
    assert prime_main(["sample", *common, "--runtime", "onnxruntime", "--step-model", str(step)]) == 0
    assert json.loads(capsys.readouterr().out)["tokens"] == eager["tokens"]


def test_a_step_of_another_model_is_refused(checkpoint, exported, capsys):
    ckpt, _ = checkpoint("mlp-l1", CASES["mlp-l1"][0])
    other, _, _ = exported("mlp-l2", *CASES["mlp-l2"])
    assert prime_main(["sample", ckpt, "--runtime", "onnxruntime", "--step-model", other, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was exported from another model" in err[0]


def test_a_graph_needing_a_missing_plugin_names_its_distribution():
    """The graph's metadata records which distribution provided each component (issue 13)."""
    from export.runner import spec_from_metadata
    from prime_core import Config, RegistryError
    from prime_core.plugin.default import new_registry

    config = Config.from_dict({"model": {"num_classes": 6, "length": 3, "map": "probe-gray"}})
    meta = {"config": config.to_dict(), "num_classes": 6, "ell": 2,
            "components": {"map": {"name": "probe-gray", "distribution": "prime-plugin-probe", "version": "0.1.0"}}}
    with pytest.raises(RegistryError, match=r"unknown map 'probe-gray', provided by prime-plugin-probe 0.1.0, which "
                                            r"is not installed: pip install prime-plugin-probe==0.1.0"):
        spec_from_metadata(meta, new_registry(load_plugins=False))
