"""Issue 24 items 4, 5 and 10(b), one case each (docs/reliability.md, "Samplers (issue 24/23)"):

- 4: every sampler's rows depend only on (seed, row): `-n 3` equals the first rows of `-n 16`, and `--batch-size`
  changes nothing — the confidence sampler included, also when the backbone's float32 results depend on the batch;
- 5: ONNX Runtime gives the eager sampler's tokens at every temperature / top-p (the exported step filters with
  the eager samplers' own `filter_scores`, in float64, ties in the same order);
- 10(b): τ → 0 is the argmax (τ < GREEDY_TEMPERATURE), a tiny top-p keeps the most probable token; never an
  invalid id (`--temperature 1e-300`, `--temperature 1e-45`, `--top-p 1e-300` ended with "token ids must lie in
  [0, 4095] … got [-1, -1]").
"""

from __future__ import annotations

import json

import pytest
import torch

from prime_core import Config, ModelConfig, build_model, save_model
from prime_core.api import (GREEDY_TEMPERATURE, AncestralSampler, ConfidenceSampler, filter_log_probs,
                            filter_scores, get_registry)
from prime_core.cli.app import main

from test_bad_inputs import TINY


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--out", str(out), "--quiet", *TINY]) == 0
    return str(out / "checkpoint.safetensors")


def _sample(capsys, *args) -> list[list[int]]:
    rc = main(["sample", *args, "--json", "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    tokens = json.loads(captured.out)["tokens"]
    return tokens


# ------------------------------------------------------------------------------------- item 4: batch invariance
SAMPLERS = ["ancestral", "confidence", "first-hitting", "remdm"]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_first_rows_and_batch_size_do_not_change_rows(ckpt, capsys, sampler):
    """The issue's commands: `--sampler confidence --seed 7 --steps 16 -n 3` vs `-n 16` vs `-n 16 --batch-size 3`."""
    common = [ckpt, "--sampler", sampler, "--seed", "7", "--steps", "16"]
    three = _sample(capsys, *common, "-n", "3")
    sixteen = _sample(capsys, *common, "-n", "16")
    chunked = _sample(capsys, *common, "-n", "16", "--batch-size", "3")
    assert three == sixteen[:3]
    assert chunked == sixteen


def test_core_samplers_are_all_covered():
    """The CLI case above runs every sampler prime-core registers (the conformance suite covers plugins')."""
    from prime_core.plugin.default import new_registry

    assert set(new_registry(load_plugins=False).names("sampler")) == set(SAMPLERS)


def _batch_sensitive_model(noise="independent"):
    """Positions that tie exactly and logits that change in their last bits with the batch size (conformance's
    toy backbone): what made the confidence sampler batch-dependent with a real DiT."""
    from conformance.toy import tiny_model

    return tiny_model(6, 2, 3, head=get_registry().build("head", "carry-over"), noise=noise, seed=3,
                      shared_positions=True, batch_rounding=1e-6)


@pytest.mark.parametrize("noise", ["independent", "grouped"])
def test_confidence_rows_alone_whatever_the_backbone_rounding(noise):
    model = _batch_sensitive_model(noise)
    sampler = ConfidenceSampler()
    full = sampler.sample(model, 12, steps=8, seed=7)
    assert torch.equal(sampler.sample(model, 3, steps=8, seed=7).tokens, full.tokens[:3])
    for extra in (dict(batch_size=1), dict(batch_size=5), dict(cache=False)):
        assert torch.equal(sampler.sample(model, 12, steps=8, seed=7, **extra).tokens, full.tokens)


def test_confidence_batched_forward_is_what_broke_invariance():
    """row_wise=False (one batched pass per step, the former behaviour) lets the rounding decide among tied units:
    the check above would fail — so the default must stay row-wise."""
    model = _batch_sensitive_model()
    batched = ConfidenceSampler(row_wise=False)
    full = batched.sample(model, 12, steps=8, seed=7).tokens
    assert not torch.equal(batched.sample(model, 3, steps=8, seed=7).tokens, full[:3])


def test_row_wise_must_be_a_boolean(ckpt, capsys):
    rc = main(["sample", ckpt, "--sampler", "confidence", "--option", "row_wise=3", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "row_wise must be true or false" in err


# ------------------------------------------------------------------------------ item 10(b): the limits τ → 0, p → 0
@pytest.mark.parametrize("tau", [1e-300, 1e-45, 1e-7, 0.0])
def test_tiny_temperature_is_the_argmax(tau):
    log_p = torch.log_softmax(torch.tensor([[0.3, 2.0, -1.0, float("-inf")], [5.0, 5.0, 1.0, 0.0]]), -1)
    scores = filter_scores(log_p, torch.tensor(tau), torch.tensor(1.0))
    assert scores.dtype == torch.float64 and not bool(scores.isnan().any())
    keep = torch.isfinite(scores)
    assert keep.tolist() == [[False, True, False, False], [True, True, False, False]]  # exact ties both kept
    assert bool((scores[keep] == 0).all())


def test_temperature_above_the_threshold_is_finite_at_the_top():
    log_p = torch.log_softmax(torch.tensor([[0.3, 2.0, -1.0]]), -1)
    scores = filter_log_probs(log_p, 2 * GREEDY_TEMPERATURE)
    assert float(scores.max()) == 0.0 and int(torch.isfinite(scores).sum()) >= 1
    assert torch.allclose(torch.softmax(filter_log_probs(log_p, 0.5), -1), torch.softmax(log_p.double() / 0.5, -1))


@pytest.mark.parametrize("top_p", [1e-300, 1e-45, 1e-3])
def test_tiny_top_p_keeps_the_most_probable_token(top_p):
    log_p = torch.log_softmax(torch.tensor([[0.3, 2.0, -1.0], [1.0, 1.0, 0.0]]), -1)
    keep = torch.isfinite(filter_log_probs(log_p, 1.0, top_p))
    assert keep.tolist() == [[False, True, False], [True, False, False]]  # a tie: the lower id, as ONNX TopK


def test_nucleus_keeps_the_shortest_prefix_reaching_top_p():
    log_p = torch.tensor([[0.5, 0.3, 0.2]]).log()
    for top_p, kept in ((0.49, 1), (0.51, 2), (0.79, 2), (0.81, 3), (1.0, 3)):
        assert int(torch.isfinite(filter_log_probs(log_p, 1.0, top_p)).sum()) == kept, top_p


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_cli_tiny_temperature_and_top_p_give_valid_greedy_tokens(ckpt, capsys, sampler):
    """The issue's values: valid ids, and all three limits draw the same (argmax) tokens."""
    common = [ckpt, "--sampler", sampler, "--seed", "5", "-n", "6", "--steps", "8"]
    outs = [_sample(capsys, *common, *extra) for extra in
            (["--temperature", "1e-300"], ["--temperature", "1e-45"], ["--top-p", "1e-300"])]
    assert outs[0] == outs[1] == outs[2]
    assert all(0 <= t < 6 for row in outs[0] for t in row)


# ------------------------------------------------------------------------ item 5: ONNX Runtime = torch at any τ, p
def _model(zero: bool = False):
    """C = 50, ℓ = 2 (b = 8, codes 50 … 63 invalid), L = 3, random weights — or all zero: every token tied."""
    cfg = Config(model=ModelConfig(num_classes=50, length=3, ell=2, width=8, backbone_options={"hidden": 32,
                                                                                               "depth": 1}))
    torch.manual_seed(0)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.zero_() if zero else p.normal_(0.0, 0.7)
    return model.eval(), cfg


@pytest.fixture(scope="module")
def onnx_steps(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from export.graph import export_step

    root = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, zero in (("random", False), ("tied", True)):
        model, cfg = _model(zero)
        ckpt, step = str(root / f"{name}.safetensors"), str(root / f"{name}.onnx")
        save_model(ckpt, model, cfg)
        export_step(model, cfg, step, with_probs=False)
        out[name] = (model, ckpt, step)
    return out


@pytest.mark.parametrize("top_p", [0.5, 0.9, 1.0, 1e-300])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 1e-300])
@pytest.mark.parametrize("name", ["random", "tied"])
def test_onnxruntime_tokens_equal_torch(onnx_steps, name, top_p, temperature):
    from export.runner import RuntimeSampler

    model, _, step = onnx_steps[name]
    kw = dict(num_samples=6, steps=8, seed=3, top_p=top_p, temperature=temperature, draw_dtype=torch.float64)
    eager = AncestralSampler().sample(model, **kw)
    assert torch.equal(eager.tokens, RuntimeSampler.from_onnx(step).sample(model, **kw).tokens)


def test_cli_runtime_parity_at_the_issue_command(onnx_steps, capsys):
    """`prime sample CKPT --seed 3 -n 6 --steps 8` with and without `--runtime onnxruntime --step-model`."""
    _, ckpt, step = onnx_steps["random"]
    for top_p in ("0.9", "1e-300"):
        common = [ckpt, "--seed", "3", "-n", "6", "--steps", "8", "--top-p", top_p, "--temperature", "0.8"]
        eager = _sample(capsys, *common)
        assert eager == _sample(capsys, *common, "--runtime", "onnxruntime", "--step-model", step)
