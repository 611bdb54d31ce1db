"""The DiT backbone (prime-plugin-dit) at a small size: export → checker → ORT parity at batch 1 and 5, and the
sampler loop on ONNX Runtime gives the eager tokens. Skipped when the plugin is not installed."""

from __future__ import annotations

import onnx
import pytest
import torch

pytest.importorskip("prime_plugin_dit")

from export.runner import RuntimeSampler  # noqa: E402
from export.validate import compare_onnx  # noqa: E402
from prime_core import AncestralSampler  # noqa: E402

from .conftest import dit_config  # noqa: E402


@pytest.fixture(scope="module")
def dit_step(exported):
    return exported("dit-tiny", dit_config(ell=2, time_conditioned=True))


def test_dit_step_matches_torch(dit_step):
    path, model, meta = dit_step
    onnx.checker.check_model(onnx.load(path), full_check=True)
    assert meta["time_conditioned"] is True
    for r in compare_onnx(model, path, meta, batches=(1, 5)):
        assert r.ids_identical, r.line()
        assert r.max_abs_prob_error < 1e-4, r.line()


@pytest.mark.parametrize("top_p", [1.0, 0.9])
def test_dit_sampler_identical_tokens(dit_step, top_p):
    path, model, _ = dit_step
    kw = dict(num_samples=4, steps=10, seed=2, top_p=top_p, draw_dtype=torch.float64)
    eager = AncestralSampler().sample(model, **kw)
    ort = RuntimeSampler.from_onnx(path).sample(model, **kw)
    assert torch.equal(eager.tokens, ort.tokens) and torch.equal(eager.nfe, ort.nfe)
