"""Export → onnx.checker → ONNX Runtime parity with eager torch, for the MLP (ℓ = 1, 2) at batch sizes 1 and 5."""

from __future__ import annotations

import onnx
import pytest
import torch

from export.graph import read_metadata
from export.step import INPUT_NAMES
from export.validate import compare_onnx

from .conftest import mlp_config

CASES = {"mlp-l2": (mlp_config(2), {}), "mlp-l1": (mlp_config(1, noise="independent"), {}),
         "mlp-l3-grouped": (mlp_config(3, noise="grouped", time_conditioned=True), {})}


@pytest.mark.parametrize("name", sorted(CASES))
def test_graph_passes_checker_and_matches_torch(exported, name):
    cfg, options = CASES[name]
    path, model, meta = exported(name, cfg, **options)
    onnx.checker.check_model(onnx.load(path), full_check=True)
    results = compare_onnx(model, path, meta, batches=(1, 5))
    assert [r.batch for r in results] == [1, 5]  # one graph, two batch sizes: the batch axis is dynamic
    for r in results:
        assert r.ids_identical, r.line()
        assert r.max_abs_prob_error < 1e-5, r.line()


def test_graph_signature_and_metadata(exported):
    path, model, meta = exported("mlp-l2", *CASES["mlp-l2"])
    proto = onnx.load(path)
    assert [i.name for i in proto.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in proto.graph.output] == ["y_s", "probs"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # dynamic batch
    stored = read_metadata(proto)
    assert stored == meta
    assert (stored["num_classes"], stored["ell"], stored["base"], stored["length"]) == (27, 2, 6, 3)
    assert stored["schedule"]["name"] == "loglinear"
    assert stored["sampler_defaults"]["draw_dtype"] == "float64"
    assert {"prime-core", "torch", "onnx"} <= set(stored["versions"])
    assert {p.key for p in proto.metadata_props} == {f"prime.{k}" for k in meta}


def test_step_keeps_observed_subtokens_and_reveals_valid_tokens(exported):
    """Properties of the graph itself: observed digits never change, nothing decodes to a code ≥ C, a step with
    r = 1 (α_t = 0, α_s = 1) reveals every masked sub-token."""
    import numpy as np

    from export.graph import example_inputs
    from export.step import revealing_positions
    from export.validate import feeds, ort_session

    path, model, meta = exported("mlp-l2", *CASES["mlp-l2"])
    sess = ort_session(path)
    args = list(example_inputs(model, 7, generator=torch.Generator().manual_seed(3)))
    args[2], args[3] = torch.zeros(7, dtype=torch.float64), torch.ones(7, dtype=torch.float64)
    args[8] = revealing_positions(args[0] == model.mask_id)  # r = 1: every masked position reveals
    args[5] = torch.rand(len(args[8]), dtype=torch.float64)  # one draw uniform per revealing position
    y_s, probs = sess.run(None, feeds(tuple(args)))
    y = args[0].numpy()
    observed = y != model.mask_id
    assert (y_s[observed] == y[observed]).all()
    assert (y_s != model.mask_id).all()
    assert bool(model.map.is_valid(model.map.decode(torch.from_numpy(y_s))).all())
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_exporter_is_registered():
    from prime_core.plugin.default import new_registry

    reg = new_registry()
    assert {"onnx", "tensorrt"} <= set(reg.names("exporter"))
    assert reg.get("exporter", "onnx").distribution == "prime-export"


def test_cli_exports_checks_and_compares(checkpoint, tmp_path, capsys):
    """`python -m export.onnx CKPT -o … --no-nucleus`: writes the graph, prints the parity lines; a graph without
    the nucleus sort refuses top_p < 1 in the runner."""
    from export.onnx import main as onnx_main
    from export.runner import RuntimeSampler
    from prime_core import PrimeError

    ckpt, model = checkpoint("mlp-l2", CASES["mlp-l2"][0])
    out = tmp_path / "step.onnx"
    assert onnx_main([ckpt, "-o", str(out), "--no-nucleus", "--batch", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"wrote {out}") and "onnx.checker: ok" in lines[0]
    assert len(lines) == 3 and all("sampled ids identical" in line for line in lines[1:])
    runner = RuntimeSampler.from_onnx(str(out))
    assert runner.meta["step"]["nucleus"] is False
    with pytest.raises(PrimeError, match="nucleus"):
        runner.sample(model, num_samples=1, steps=2, top_p=0.5)
    runner.sample(model, num_samples=2, steps=3)  # top_p = 1 works
