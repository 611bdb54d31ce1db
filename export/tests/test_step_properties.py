"""Properties of the exported step on random inputs (hypothesis): ORT equals eager torch, observed sub-tokens are
kept, exactly the units selected by the reveal rule change, and every position decodes to a token < C."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from export.graph import example_inputs
from export.step import SamplerStep, reveal_rule
from export.validate import feeds, ort_session

from .test_export_onnx import CASES


@pytest.fixture(scope="module")
def grouped_step(exported):
    path, model, meta = exported("mlp-l3-grouped", *CASES["mlp-l3-grouped"])
    return ort_session(path), model


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 6), seed=st.integers(0, 2**31 - 1), mask_rate=st.floats(0.0, 1.0))
def test_step_properties(grouped_step, batch, seed, mask_rate):
    sess, model = grouped_step
    args = example_inputs(model, batch, generator=torch.Generator().manual_seed(seed), mask_rate=mask_rate)
    y_s, probs = sess.run(None, feeds(args))
    y_s = torch.from_numpy(y_s)
    with torch.no_grad():
        y_ref, _ = SamplerStep(model).eval()(*args)
    assert torch.equal(y_s, y_ref)
    y = args[0]
    reveal = reveal_rule(y, args[2], args[3], args[4], model.mask_id)
    assert torch.equal(y_s != y, reveal)  # only revealed units change, and each revealed unit gets a digit
    assert (y_s[y != model.mask_id] == y[y != model.mask_id]).all()
    # grouped noise: a token's ℓ sub-tokens are revealed together, so a fully revealed token is a valid code
    done = (y_s != model.mask_id).all(-1)
    assert bool(model.map.is_valid(model.map.decode(y_s[done])).all())


def test_onnx_exporter_plugin_refuses_existing_output(checkpoint, tmp_path):
    from prime_core import PrimeError
    from prime_core.plugin.default import new_registry

    ckpt, _ = checkpoint("mlp-l2", CASES["mlp-l2"][0])
    out = tmp_path / "s.onnx"
    out.write_text("x")
    with pytest.raises(PrimeError, match="exists"):
        new_registry().build("exporter", "onnx").export(ckpt, str(out))
