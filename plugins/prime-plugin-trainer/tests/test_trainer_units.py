"""EMA math, LR schedule, option validation, and the split-invariance the trainer's equivalences rest on."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from prime_core import Config, ConfigError, PrimeError, build_dataset, build_model, load_config
from prime_core.runs.build import resolve_sizes
from prime_core.builtin.trainer import learning_rate
from prime_core.diffusion.losses import training_nelbo
from prime_plugin_trainer import EMA, TorchTrainer, TrainerOptions
from prime_plugin_trainer.batching import draw_step, micro_slices

from trainer_helpers import checkpoint_tensors, max_relative_gap


# ------------------------------------------------------------------------------------------------ EMA
@given(decay=st.floats(0.0, 0.99), values=st.lists(st.floats(-3, 3), min_size=1, max_size=12))
def test_ema_matches_closed_form(decay, values):
    """θ̄_n = βⁿ θ_0 + (1 − β) Σ_{k=1..n} β^{n−k} θ_k for a scalar parameter driven through θ_1 … θ_n."""
    layer = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(0.5)
    ema = EMA(layer, decay)
    for v in values:
        with torch.no_grad():
            layer.weight.fill_(v)
        ema.update(layer)
    n = len(values)
    expected = decay**n * 0.5 + (1 - decay) * sum(decay ** (n - k) * v for k, v in enumerate(values, start=1))
    got = ema.full_tensors()["weight"].item()
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-5)


def test_ema_of_a_constant_is_that_constant_and_round_trips():
    layer = nn.Linear(3, 2)
    ema = EMA(layer, 0.9)
    for _ in range(5):
        ema.update(layer)
    full = ema.full_tensors()
    assert all(torch.allclose(full[n], p) for n, p in layer.named_parameters())
    other = EMA(nn.Linear(3, 2), 0.9)
    other.load(full)
    assert all(torch.equal(a, b) for a, b in zip(other.shadow, ema.shadow))


# ------------------------------------------------------------------------------------------------ LR schedule
def _cfg(schedule, steps=100, warmup=10, lr=1.0):
    return Config.from_dict({"train": {"steps": steps, "warmup": warmup, "lr": lr, "trainer": "torch",
                                       "options": {"schedule": schedule}}})


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_warmup_is_linear_to_the_peak(schedule):
    cfg = _cfg(schedule)
    assert [learning_rate(s, cfg) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])


def test_constant_after_warmup_and_cosine_decays_to_zero():
    const, cos = _cfg("constant"), _cfg("cosine")
    assert all(learning_rate(s, const) == 1.0 for s in range(10, 100))
    assert learning_rate(10, cos) == pytest.approx(1.0)
    assert learning_rate(55, cos) == pytest.approx(0.5)  # half-way through the decay: ½(1 + cos(π/2))
    assert learning_rate(99, cos) == pytest.approx(0.5 * (1 + math.cos(math.pi * 89 / 90)))
    values = [learning_rate(s, cos) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(values, values[1:]))


# ------------------------------------------------------------------------------------------------ options
@pytest.mark.parametrize("options, fragment", [
    ({"emaa": 0.9}, "unknown train.options key(s) emaa"),
    ({"ema": 1.0}, "train.options.ema must be a number in [0, 1)"),
    ({"grad_accum": 0}, "train.options.grad_accum must be an integer ≥ 1"),
    ({"precision": "fp16"}, "train.options.precision must be one of auto, fp32, bf16"),
    ({"parallel": "zero"}, "train.options.parallel must be one of ddp, fsdp"),
    ({"schedule": "linear"}, "train.options.schedule must be one of constant, cosine"),
    ({"compile": "yes"}, "train.options.compile must be true or false"),
])
def test_bad_options_are_one_line_config_errors(options, fragment):
    with pytest.raises(ConfigError) as err:
        TrainerOptions.from_dict(options)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_batch_must_split_evenly():
    with pytest.raises(PrimeError, match="divisible by processes"):
        micro_slices(10, 2, 2, 0)
    assert micro_slices(8, 2, 2, 1) == [slice(4, 6), slice(6, 8)]


# ------------------------------------------------------------------------------------------------ split invariance
def test_row_losses_do_not_depend_on_the_split(make_config):
    """The noise of step n is drawn for all B rows, so a micro-batch's row losses are the full batch's rows."""
    cfg = load_config(make_config())
    data = build_dataset(cfg)
    cfg = resolve_sizes(cfg, data.num_classes, data.length)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    batch = draw_step(data.split("train"), 3, 32, 0, model, 1e-3)
    full = training_nelbo(model, batch.tokens, t=batch.t, masked=batch.masked)
    for sl in micro_slices(32, 2, 2, 0) + micro_slices(32, 2, 2, 1):
        part = batch.rows(sl)
        torch.testing.assert_close(training_nelbo(model, part.tokens, t=part.t, masked=part.masked), full[sl])


# ------------------------------------------------------------------------------------------------ accumulation
def test_accumulating_two_half_batches_equals_one_batch(make_config, tmp_path):
    """Same global batch B = 32: 1 × 32 rows vs 2 micro-batches × 16 rows. Only fp32 summation order differs,
    so every tensor (weights, EMA, Adam moments) agrees to ≤ 1e-4 relative (measured ≈ 1e-6); a wrong loss
    scale or mismatched rows/noise gives O(1) gaps in the Adam moments."""
    one = TorchTrainer().fit(load_config(make_config("a.toml")), out_dir=str(tmp_path / "one"), progress=False)
    two = TorchTrainer().fit(load_config(make_config("b.toml", options={"grad_accum": 2})),
                             out_dir=str(tmp_path / "two"), progress=False)
    a, b = checkpoint_tensors(one), checkpoint_tensors(two)
    assert any(k.startswith("ema/") for k in a) and any(k.startswith("optim/") for k in a)
    gap, name = max_relative_gap(a, b)
    print(f"accumulation gap {gap:.2e} ({name})")
    assert gap <= 1e-4, (name, gap)


def test_device_option_speaks_the_shared_vocabulary(monkeypatch):
    from prime_plugin_trainer.distributed import env_layout

    assert TrainerOptions.from_dict({"device": "cuda:1"}).device == "cuda:1"
    with pytest.raises(ConfigError, match="train.options.device must be auto, cpu, cuda or cuda:N, got 'gpu'"):
        TrainerOptions.from_dict({"device": "gpu"})
    assert env_layout("cpu").device == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert env_layout("auto").device == torch.device("cpu")
    with pytest.raises(PrimeError, match="train.options.device 'cuda' asks for CUDA"):
        env_layout("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert env_layout("auto").device == env_layout("cuda").device == torch.device("cuda", 1)
    assert env_layout("cuda:0").device == torch.device("cuda", 0)
