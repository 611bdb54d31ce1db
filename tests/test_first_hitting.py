"""DESIGN §2.5 items 6–7: the first-hitting sampler, and batch invariance of the keyed noise (both samplers)."""

import pytest
import torch

from prime_core import AncestralSampler
from prime_core.diffusion import exact
from prime_core.api import FirstHittingSampler, key_words
from prime_core.sampling.first_hitting import event_schedule, reveal_times
from prime_core.sampling.ancestral import row_seeds

fh = FirstHittingSampler()


def _chi2(tokens, p, c):
    counts = torch.bincount(tokens[:, 0] * c + tokens[:, 1], minlength=c * c).double()
    expected = p * len(tokens)
    return float(((counts - expected) ** 2 / expected).sum())


def test_continuous_distribution_is_the_exact_continuous_time_likelihood(tiny_model):
    """χ² of 20 000 first-hitting samples against p_θ of prime_core.diffusion.exact (C = 4, L = 2, ℓ = 2: 16 sequences)."""
    model = tiny_model(num_classes=4, length=2, ell=2, scale=1.0)
    p = exact.exact_log_likelihood(model, exact.all_sequences(4, 2)).exp()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-6)  # float32 model, float64 DP
    out = fh.sample(model, 20000, seed=11)
    assert _chi2(out.tokens, p, 4) < 45.0  # χ²(15) exceeds 37.7 with probability 0.001
    # and it is not the T = 2 sampler's distribution, which differs visibly from the continuous one
    p2 = exact.exact_tstep_log_likelihood(model, exact.all_sequences(4, 2), 2).exp()
    assert float((p2 - p).abs().max()) > 0.02 and _chi2(out.tokens, p2, 4) > 100.0


def test_quantised_distribution_is_the_tstep_likelihood(tiny_model):
    model = tiny_model(num_classes=4, length=2, ell=2, scale=1.0)
    p = exact.exact_tstep_log_likelihood(model, exact.all_sequences(4, 2), 3).exp()
    out = fh.sample(model, 6000, steps=3, seed=5)
    assert _chi2(out.tokens, p, 4) < 45.0
    assert bool((out.nfe <= 3).all()) and bool((out.idle_steps == 0).all())


@pytest.mark.parametrize("steps", [None, 4, 64])
@pytest.mark.parametrize("noise", ["independent", "grouped"])
def test_nfe_per_row_is_the_number_of_distinct_reveal_events(tiny_model, steps, noise):
    model = tiny_model(num_classes=9, length=3, ell=2, noise=noise)
    n = 200
    out = fh.sample(model, n, steps=steps, seed=2)
    times = reveal_times(model, key_words(row_seeds(n, 2)), steps).view(n, -1)
    distinct = torch.tensor([len(set(row.tolist())) for row in times])
    assert torch.equal(out.nfe, distinct)
    units = 3 if noise == "grouped" else 6
    assert bool((out.nfe <= units).all()) and out.forward_calls == int(distinct.max())
    if steps is None:
        assert bool((out.nfe == units).all())  # continuous times never tie


def test_event_schedule_groups_equal_times_latest_first():
    times = torch.tensor([[0.2, 0.7, 0.2, 0.9]], dtype=torch.float64)
    free = torch.tensor([[True, True, True, False]])
    event, event_time, count = event_schedule(times, free)
    assert event.tolist() == [[1, 0, 1, -1]] and count.tolist() == [2]
    assert event_time[0, :2].tolist() == [0.7, 0.2]


@pytest.mark.parametrize("make", [AncestralSampler, FirstHittingSampler])
def test_batch_equals_members_chunks_and_cache(tiny_model, make):
    sampler = make()
    model = tiny_model(num_classes=20, length=4, ell=2, time_conditioned=True)
    kw = dict(steps=16, temperature=0.8, top_p=0.9)
    a = sampler.sample(model, 8, seed=3, **kw)
    assert torch.equal(a.tokens, sampler.sample(model, 8, seed=3, **kw).tokens)
    assert not torch.equal(a.tokens, sampler.sample(model, 8, seed=4, **kw).tokens)
    alone = [sampler.sample(model, 1, seeds=[k], **kw) for k in row_seeds(8, 3)]
    assert torch.equal(a.tokens, torch.cat([o.tokens for o in alone]))
    assert torch.equal(a.nfe, torch.cat([o.nfe for o in alone]))
    for batch_size in (1, 3, 5):
        assert torch.equal(a.tokens, sampler.sample(model, 8, seed=3, batch_size=batch_size, **kw).tokens)
    assert torch.equal(a.tokens, sampler.sample(model, 8, seed=3, cache=False, **kw).tokens)
    # a row's sample depends on its key only: the rows of a larger batch begin with the same rows
    assert torch.equal(a.tokens, sampler.sample(model, 12, seed=3, **kw).tokens[:8])


def test_first_hitting_fixed_units_are_never_events(tiny_model):
    model = tiny_model(num_classes=50, length=4, ell=2)  # b = 8
    fixed = torch.tensor([7, -1, 42, -1])
    out = fh.sample(model, 10, seed=0, fixed_tokens=fixed, return_trajectory=True)
    assert bool((out.tokens[:, 0] == 7).all()) and bool((out.tokens[:, 2] == 42).all())
    assert bool((out.nfe == 4).all())  # 2 free tokens × ℓ = 2 units
    digits = torch.full((4, 2), -1)
    digits[1, 0] = 5
    out = fh.sample(model, 10, steps=8, seed=0, fixed_digits=digits)
    assert bool(((out.tokens[:, 1] >= 40) & (out.tokens[:, 1] < 48)).all()) and bool((out.nfe <= 7).all())


def test_first_hitting_options_and_cli(tiny_model, tmp_path, capsys):
    model = tiny_model(num_classes=20, length=3, ell=2)
    sched = fh.sample(model, 4, seed=0, temperature=lambda t: 0.5 * t + 0.5, draw_dtype=torch.float64)
    assert bool((sched.tokens < 20).all())
    assert torch.equal(FirstHittingSampler(continuous=True).sample(model, 4, steps=8, seed=1).tokens,
                       fh.sample(model, 4, seed=1).tokens)
    with pytest.raises(ValueError, match="temperature"):
        fh.sample(model, 2, seed=0, temperature=lambda t: -1.0)
    with pytest.raises(ValueError, match="continuous"):
        FirstHittingSampler(continuous="yes")


def test_prime_sample_first_hitting(tmp_path, capsys):
    import json

    from prime_core.cli.app import main
    from test_cli import TINY

    assert main(["train", "--out", str(tmp_path), "--quiet", *TINY]) == 0
    capsys.readouterr()  # train's "checkpoint: …" line
    ckpt = str(tmp_path / "checkpoint.safetensors")
    base = [ckpt, "-n", "5", "--seed", "2", "--json", "--quiet", "--sampler", "first-hitting"]
    common = [*base, "--steps", "6"]
    assert main(["sample", *common]) == 0
    a = json.loads(capsys.readouterr().out)
    assert a["steps"] == 6 and len(a["tokens"]) == 5 and a["idle_steps_mean"] == 0.0 and 0 < a["nfe_mean"] <= 6
    assert main(["sample", *common, "--option", "continuous=true"]) == 0
    b = json.loads(capsys.readouterr().out)
    assert b["steps"] == 0 and len(b["tokens"]) == 5
    # without --steps: the exact continuous-time sampler (not the config's sample.steps grid), same as continuous=true
    assert main(["sample", *base]) == 0
    c = json.loads(capsys.readouterr().out)
    assert c["steps"] == 0 and c["tokens"] == b["tokens"] and c["idle_ratio"] == 0.0
    # the ancestral sampler without --steps still uses sample.steps
    assert main(["sample", *base[:-2]]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] > 0
    assert main(["sample", *common, "--option", "continuous=3"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
